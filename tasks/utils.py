"""Hooks the medmoe task YAMLs name with ``!function utils.<name>``.

Kept thin on purpose: data loading lives in ``medmoe_lm_eval.benchmarks.sources`` and scoring in
``medmoe_lm_eval.benchmarks.metrics``, where they are tested and reused by the CLI and the demo. lm-eval
imports this file by path, so in a plain source checkout (package not installed) the repository
root is put on ``sys.path`` to find ``medmoe_lm_eval``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    import medmoe_lm_eval  # noqa: F401
except ImportError:  # source checkout, not installed: tasks/ sits next to the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medmoe_lm_eval.benchmarks import calibration, metrics, sources, splits

# -- datasets (custom_dataset receives the task metadata merged with --metadata and model args) --


def load_pubmedqa(**metadata: Any):
    return sources.task_dataset("pubmedqa", **metadata)


def load_medmcqa(**metadata: Any):
    return sources.task_dataset("medmcqa", **metadata)


def load_medquad(**metadata: Any):
    return sources.task_dataset("medquad", **metadata)


def load_lawse(**metadata: Any):
    return sources.task_dataset("lawse", **metadata)


def load_legal_ruleqa(**metadata: Any):
    return sources.task_dataset("legal_ruleqa", **metadata)


def load_mbpp(**metadata: Any):
    return sources.task_dataset("mbpp", **metadata)


def load_benchmark(**metadata: Any):
    """MedQA and the MMLU subjects: the YAML names its benchmark in ``metadata.benchmark``."""
    return sources.benchmark_dataset(**metadata)


def load_ppl_biomedical(**metadata: Any):
    return splits.ppl_dataset("biomedical")


def load_ppl_legal(**metadata: Any):
    return splits.ppl_dataset("legal")


def load_ppl_code(**metadata: Any):
    return splits.ppl_dataset("code")


# -- prompts ----------------------------------------------------------------------------------


def pubmedqa_prompt(doc: dict) -> str:
    """Abstract sections (without the conclusion), then the question, as in the PubMedQA paper."""
    return "Abstract: " + "\n".join(doc["context"]["contexts"]) + f"\nQuestion: {doc['question']}\nAnswer:"


def mbpp_prompt(doc: dict) -> str:
    """The MBPP paper's prompt: the problem, its asserts, and ``[BEGIN]`` before the code."""
    tests = "\n".join(doc["test_list"])
    return f"You are an expert Python programmer, and here is your task: {doc['text']} Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"


def mbpp_fewshot() -> list[dict]:
    return splits.mbpp_fewshot_docs()


# -- metrics ----------------------------------------------------------------------------------

rougeL_f1 = metrics.rougeL_f1
rouge1_f1 = metrics.rouge1_f1
macro_f1 = metrics.macro_f1
process_pubmedqa = metrics.pubmedqa_results
process_medmcqa = calibration.mc_process_results(lambda doc: int(doc["cop"]))
process_medqa = calibration.mc_process_results(lambda doc: "ABCD".index(doc["answer_idx"]), choices=("A", "B", "C", "D"))
process_mmlu = calibration.mc_process_results(lambda doc: int(doc["answer"]))
ece = calibration.expected_calibration_error
mbpp_filter = metrics.mbpp_filter
process_mbpp = metrics.mbpp_results

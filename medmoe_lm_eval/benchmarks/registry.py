"""The benchmark registry: each benchmark's hub dataset, required fields and fixed evaluation selection.

Whatever the source of the rows (hub, bundled sample, a local folder), they pass the same checks
and the same ``select``, so a task scores the same rows whichever way they arrived.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medmoe_lm_eval.benchmarks.rows import DataError, hash_order
from medmoe_lm_eval.benchmarks.text import best_answer, html_to_text
from medmoe_lm_eval.paths import bundled_data_dir

#: Generation-scored benchmarks with thousands of rows are cut to this many, chosen by a content
#: hash (independent of row order and library versions). At 1,000 rows the standard error of a
#: mean ROUGE-L F1 (per-row spread about 0.1-0.15) is about 0.004, finer than the gaps between
#: candidates we rank, while generating up to 512 tokens for all 16k MedQuAD or 24k
#: Law-StackExchange rows would cost every candidate 16-24x more time and energy for no change in
#: the ranking. The order is the hash order too, so ``--limit n`` takes a fixed pseudo-random n.
EVAL_SUBSET = 1000


log = logging.getLogger(__name__)

#: a row check returns (field, problem) for a bad row, else None
Check = Callable[[dict[str, Any]], "tuple[str, str] | None"]
Select = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass(frozen=True)
class HubDataset:
    """Where a benchmark lives on the hub: dataset id, config, split."""

    path: str
    name: str | None
    split: str

    def label(self) -> str:
        return f"hub:{self.path}" + (f"[{self.name}]" if self.name else "") + f"/{self.split}"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its hub home, the fields its task reads, checks and evaluation selection.

    Its task's domain, metric and options are the benchmark table's (``task_table``)."""

    name: str
    hub: HubDataset
    required: tuple[str, ...]
    check: Check | None = None
    select: Select | None = None
    notes: str = ""
    #: file stem in a data folder (``<folder>/<file>.jsonl``); several benchmarks may share one file
    file: str = ""
    #: ``(column, value)``: this benchmark's rows of a shared file (an MMLU subject)
    subset: tuple[str, str] | None = None
    #: where the few-shot examples live on the hub, and their file stem in a data folder
    fewshot_hub: HubDataset | None = None
    fewshot_file: str = ""
    #: rows the task scores from the hub (the published split after ``select``), for ``medmoe plan``
    #: without downloading; None where unknown
    hub_rows: int | None = None

    @property
    def file_stem(self) -> str:
        return self.file or self.name


def _pubmedqa_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if row["final_decision"] not in PUBMEDQA_CHOICES:
        return "final_decision", f"is {row['final_decision']!r}, expected one of {list(PUBMEDQA_CHOICES)}"
    if not isinstance(row["context"].get("contexts"), list):
        return "context.contexts", "is not a list of abstract sections"
    return None


def _pubmedqa_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The official PQA-L test split is the 500 ids in ``test_pubids.json``.

    The hub copy keeps all 1,000 labelled questions in one ``train`` split, so they are filtered
    here. A file that holds none of those ids (the bundled sample is drawn from the other 500,
    since the test records are not redistributed here) is used whole, with a warning.
    """
    test_ids = pubmedqa_test_ids()
    kept = [r for r in rows if int(r["pubid"]) in test_ids]
    if kept:
        return kept
    log.warning("PubMedQA rows contain none of the %d official test ids; evaluating all %d rows as given", len(test_ids), len(rows))
    return rows


def _medmcqa_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(row["cop"], int) or not 0 <= row["cop"] <= 3:
        return "cop", f"is {row['cop']!r}, expected the correct option's index 0-3"
    return None


def _medquad_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answered = [r for r in rows if str(r["Answer"]).strip() and str(r["Question"]).strip()]
    return hash_order(answered, lambda r: r["Question"] + "\x00" + r["Answer"])[:EVAL_SUBSET]


def _lawse_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(row["answers"], list):
        return "answers", "is not a list of {body, score} answers"
    for i, ans in enumerate(row["answers"]):
        if not isinstance(ans, dict) or "body" not in ans or "score" not in ans:
            return f"answers[{i}]", "needs 'body' and 'score'"
    return None


def _lawse_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Questions with at least one answer; the reference is the highest-scored answer, as text."""
    docs = []
    for row in rows:
        best = best_answer(row["answers"])
        if best is None:
            continue
        answer = html_to_text(best["body"])
        if not answer:
            continue
        docs.append({**row, "question_text": html_to_text(row["question_body"]), "best_answer": answer})
    if any(r.get("synthetic") for r in docs):
        log.warning("Law-StackExchange rows marked synthetic: fine for testing the pipeline, meaningless as a score")
    return hash_order(docs, lambda r: str(r["question_id"]))[:EVAL_SUBSET]


def _mbpp_check(row: dict[str, Any]) -> tuple[str, str] | None:
    tests = row["test_list"]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        return "test_list", "must be a non-empty list of assert statements"
    return None


def _mbpp_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "test_setup_code": r.get("test_setup_code") or ""} for r in rows]


PUBMEDQA_CHOICES = ("yes", "no", "maybe")
LETTERS = ("A", "B", "C", "D")

#: the six MMLU subjects of the Open Medical-LLM Leaderboard
MMLU_MEDICAL_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics", "professional_medicine")


def _medqa_check(row: dict[str, Any]) -> tuple[str, str] | None:
    options = row["options"]
    if not isinstance(options, dict) or any(not isinstance(options.get(k), str) for k in LETTERS):
        return "options", f"must map each of {list(LETTERS)} to the option's text"
    if row["answer_idx"] not in LETTERS:
        return "answer_idx", f"is {row['answer_idx']!r}, expected the correct option's letter, one of {list(LETTERS)}"
    return None


def _mmlu_check(row: dict[str, Any]) -> tuple[str, str] | None:
    choices = row["choices"]
    if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        return "choices", "must be a list of the 4 answer texts"
    if not isinstance(row["answer"], int) or not 0 <= row["answer"] <= 3:
        return "answer", f"is {row['answer']!r}, expected the correct choice's index 0-3"
    return None


#: test-split sizes of the six subjects on the hub (cais/mmlu)
MMLU_TEST_ROWS = {
    "anatomy": 135,
    "clinical_knowledge": 265,
    "college_biology": 144,
    "college_medicine": 173,
    "medical_genetics": 100,
    "professional_medicine": 272,
}


def _mmlu(subject: str) -> Benchmark:
    """One MMLU subject: hub config ``subject``; in a folder, its rows of ``mmlu_medical.jsonl``."""
    return Benchmark(
        f"mmlu_{subject}",
        HubDataset("cais/mmlu", subject, "test"),
        ("question", "subject", "choices", "answer"),
        _mmlu_check,
        notes=f"rows with subject {subject!r}",
        file="mmlu_medical",
        subset=("subject", subject),
        fewshot_hub=HubDataset("cais/mmlu", subject, "dev"),
        fewshot_file="mmlu_medical_dev",
        hub_rows=MMLU_TEST_ROWS[subject],
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "pubmedqa",
            HubDataset("qiaojin/PubMedQA", "pqa_labeled", "train"),
            ("pubid", "question", "context", "final_decision"),
            _pubmedqa_check,
            _pubmedqa_select,
            "filtered to the 500 official PQA-L test ids",
            hub_rows=500,
        ),
        Benchmark(
            "medmcqa",
            HubDataset("openlifescienceai/medmcqa", None, "validation"),
            ("question", "opa", "opb", "opc", "opd", "cop"),
            _medmcqa_check,
            hub_rows=4183,
        ),
        Benchmark(
            "medquad",
            HubDataset("keivalya/MedQuad-MedicalQnADataset", None, "train"),
            ("Question", "Answer"),
            None,
            _medquad_select,
            f"{EVAL_SUBSET} answered rows by content hash",
            hub_rows=EVAL_SUBSET,
        ),
        Benchmark(
            "lawse",
            HubDataset("ymoslem/Law-StackExchange", None, "train"),
            ("question_id", "question_title", "question_body", "answers"),
            _lawse_check,
            _lawse_select,
            f"answered questions, best answer by score, HTML stripped, {EVAL_SUBSET} by id hash",
            hub_rows=EVAL_SUBSET,
        ),
        Benchmark(
            "legal_ruleqa",
            HubDataset("nguha/legalbench", "rule_qa", "test"),
            ("question", "answer"),
        ),
        Benchmark(
            "mbpp",
            HubDataset("google-research-datasets/mbpp", "full", "test"),
            ("task_id", "text", "code", "test_list"),
            _mbpp_check,
            _mbpp_select,
            hub_rows=500,
        ),
        Benchmark(
            "medqa",
            HubDataset("GBaker/MedQA-USMLE-4-options", None, "test"),
            ("question", "options", "answer_idx"),
            _medqa_check,
            hub_rows=1273,
        ),
        *(_mmlu(subject) for subject in MMLU_MEDICAL_SUBJECTS),
    )
}


def benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        problem = f"unknown benchmark {name!r}"
        raise DataError("medmoe_lm_eval.benchmarks.sources", None, "benchmark", problem, f"use one of {sorted(BENCHMARKS)}") from None


@lru_cache(maxsize=1)
def pubmedqa_test_ids() -> frozenset[int]:
    """The 500 official PQA-L test pubids (shipped; from upstream ``test_ground_truth.json``)."""
    path = bundled_data_dir() / "pubmedqa_test_pubids.json"
    return frozenset(int(x) for x in json.loads(path.read_text(encoding="utf-8")))

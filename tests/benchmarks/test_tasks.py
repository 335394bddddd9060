"""The medmoe task suite through real lm-eval runs: known answers, a tiny real model, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest
from lm_eval.tasks import TaskManager
from rouge_score import rouge_scorer
from scripted_lm import NONSENSE, ScriptedLM

from medmoe_lm_eval.benchmarks import metrics
from medmoe_lm_eval.benchmarks.domains import task_domain
from medmoe_lm_eval.benchmarks.registry import MMLU_MEDICAL_SUBJECTS
from medmoe_lm_eval.benchmarks.rows import read_jsonl
from medmoe_lm_eval.paths import bundled_data_dir, tasks_dir

REPO = Path(__file__).resolve().parents[2]
TASKS = {
    "medmoe_pubmedqa": ("biomedical", ["acc,none", "macro_f1,none"]),
    "medmoe_medmcqa": ("biomedical", ["acc,none"]),
    "medmoe_medquad": ("biomedical", ["rougeL_f1,none", "rouge1_f1,none"]),
    "medmoe_lawse": ("legal", ["rougeL_f1,none"]),
    "medmoe_legal_ruleqa": ("legal", ["rougeL_f1,none"]),
    "medmoe_mbpp": ("code", ["pass_at_1,extract_code"]),
    "medmoe_medqa": ("biomedical", ["acc,none", "acc_norm,none"]),
    **{f"medmoe_mmlu_{s}": ("biomedical", ["acc,none"]) for s in MMLU_MEDICAL_SUBJECTS},
}
MMLU_TASKS = {f"medmoe_mmlu_{s}" for s in MMLU_MEDICAL_SUBJECTS}
GROUPS = {
    "medmoe_medical": {"medmoe_pubmedqa", "medmoe_medmcqa", "medmoe_medquad", "medmoe_medqa", *MMLU_TASKS},
    "medmoe_mmlu_medical": MMLU_TASKS,
    "medmoe_open_medical": {"medmoe_pubmedqa", "medmoe_medmcqa", "medmoe_medqa", *MMLU_TASKS},
    "medmoe_legal": {"medmoe_lawse", "medmoe_legal_ruleqa"},
    "medmoe_code": {"medmoe_mbpp"},
    "medmoe": set(TASKS),
}


def _manager(**metadata) -> TaskManager:
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"medmoe_data": "bundled", **metadata})


def _scores(results: dict) -> dict[str, dict[str, float]]:
    return {task: {m: results["results"][task][m] for m in metrics_} for task, (_, metrics_) in TASKS.items()}


# -- definitions -----------------------------------------------------------------------------


def test_tasks_carry_domain_and_groups_hold_the_right_tasks():
    loaded = _manager().load(["medmoe"])
    assert set(loaded["tasks"]) == set(TASKS)
    for name, (domain, _) in TASKS.items():
        assert loaded["tasks"][name].config.metadata["domain"] == domain
        assert task_domain(name) == domain  # what routers, the oracle and the leaderboard read
    for group, members in GROUPS.items():
        assert {t.task_name for t in loaded_group(group).get_all_tasks()} == members


def loaded_group(name: str):
    return _manager().load([name])["groups"][name]


def test_mbpp_keeps_lm_evals_unsafe_code_gate():
    with pytest.raises(ValueError, match="unsafe"):
        lm_eval.simple_evaluate(model=ScriptedLM(_manager()), tasks=["medmoe_mbpp"], task_manager=_manager(), limit=1)


def test_mbpp_prompt_is_the_standard_three_shot_form():
    task = _manager().load(["medmoe_mbpp"])["tasks"]["medmoe_mbpp"]
    doc = task.test_docs()[0]
    prompt = task.fewshot_context(doc, num_fewshot=3)
    assert prompt.count("[BEGIN]") == 4 and prompt.count("[DONE]") == 3
    assert prompt.endswith(f"{doc['test_list'][-1]}\n[BEGIN]\n")
    assert "You are an expert Python programmer, and here is your task: " + doc["text"] in prompt
    assert "def similar_elements" in prompt  # MBPP task 2, the paper's first shot
    assert task.config.generation_kwargs["until"] == ["[DONE]"]


def test_pubmedqa_prompt_uses_abstract_and_question():
    task = _manager().load(["medmoe_pubmedqa"])["tasks"]["medmoe_pubmedqa"]
    doc = task.test_docs()[0]
    text = task.doc_to_text(doc)
    assert text.startswith("Abstract: " + doc["context"]["contexts"][0]) and text.endswith(f"Question: {doc['question']}\nAnswer:")
    assert doc["long_answer"] not in text  # the conclusion would give the answer away
    assert task.doc_to_choice(doc) == ["yes", "no", "maybe"]


# -- metrics -----------------------------------------------------------------------------------


def test_rouge_comes_from_rouge_score():
    ref, pred = "The cat sat on the mat today", "today the mat sat on a cat"
    lib = rouge_scorer.RougeScorer(["rougeL", "rouge1"], use_stemmer=True).score(ref, pred)
    assert metrics.rougeL_f1([ref], [pred]) == pytest.approx(lib["rougeL"].fmeasure)
    assert metrics.rouge1_f1([ref], [pred]) == pytest.approx(lib["rouge1"].fmeasure)
    assert metrics.rougeL_f1([ref], [pred]) < metrics.rouge1_f1([ref], [pred])  # order matters for L
    assert metrics.rougeL_f1([ref], [NONSENSE]) == 0.0


def test_macro_f1_punishes_majority_guessing():
    golds = [0] * 6 + [1] * 3 + [2]
    always_yes = [(g, 0) for g in golds]
    assert metrics.macro_f1(always_yes) == pytest.approx((2 * 0.6 / 1.6) / 3)
    assert metrics.macro_f1([(g, g) for g in golds]) == 1.0


@pytest.mark.parametrize(
    ("completion", "code"),
    [
        ("def f(x):\n    return x\n[DONE]", "def f(x):\n    return x"),
        ("Here you go:\n```python\ndef f(x):\n    return x\n```\nDone.", "def f(x):\n    return x"),
        ("```\ndef f(x):\n    return x", "def f(x):\n    return x"),  # cut off before the closing fence
        ("[BEGIN]\n    def f(x):\n        return x\n", "def f(x):\n    return x"),
    ],
)
def test_code_extraction(completion, code):
    assert metrics.extract_code(completion) == code


# -- known answers on every bundled row --------------------------------------------------------


@pytest.mark.slow
def test_known_answer_scripted_gold_lm():
    lm = ScriptedLM(_manager(), "gold")
    results = lm_eval.simple_evaluate(model=lm, tasks=["medmoe"], task_manager=_manager(), confirm_run_unsafe_code=True, bootstrap_iters=0)
    assert _scores(results) == {task: {m: 1.0 for m in ms} for task, (_, ms) in TASKS.items()}
    assert results["results"]["medmoe_legal"]["rougeL_f1,none"] == 1.0
    bundled = {name: len(read_jsonl(bundled_data_dir() / f"{name}.jsonl")) for name in ("medmcqa", "mbpp", "legal_ruleqa")}
    assert results["n-samples"]["medmoe_medmcqa"]["effective"] == bundled["medmcqa"]
    assert results["n-samples"]["medmoe_mbpp"]["effective"] == bundled["mbpp"]  # every reference passes


@pytest.mark.slow
def test_known_answer_scripted_wrong_lm():
    lm = ScriptedLM(_manager(), "wrong")
    results = lm_eval.simple_evaluate(model=lm, tasks=["medmoe"], task_manager=_manager(), confirm_run_unsafe_code=True, bootstrap_iters=0)
    assert _scores(results) == {task: {m: 0.0 for m in ms} for task, (_, ms) in TASKS.items()}


@pytest.mark.slow
def test_mbpp_misbehaving_completions_scored_as_failures_scripted_lm(monkeypatch):
    from medmoe_lm_eval.benchmarks.sandbox import Limits

    monkeypatch.setattr(metrics, "MBPP_LIMITS", Limits(wall_s=3.0, cpu_s=1))
    bad = [
        "while True:\n    pass\n",
        "import os\nwhile True:\n    os.fork()\n",
        "x = bytearray(4 * 1024 ** 3)\n",
        "open('/tmp/medmoe-escape.txt', 'w').write('x')\n",
        "import sys\nsys.exit(0)\n",
        "print('x' * 50_000_000)\n",
    ]

    def completion(inst):
        doc_id = inst.metadata[1]
        return bad[doc_id] if doc_id < len(bad) else inst.doc["code"] + "\n"

    lm = ScriptedLM(_manager(), generate=completion)
    results = lm_eval.simple_evaluate(model=lm, tasks=["medmoe_mbpp"], task_manager=_manager(), limit=8, confirm_run_unsafe_code=True, bootstrap_iters=0)
    per_doc = [s["pass_at_1"] for s in sorted(results["samples"]["medmoe_mbpp"], key=lambda s: s["doc_id"])]
    assert per_doc == [0.0] * 6 + [1.0, 1.0]
    assert not os.path.exists("/tmp/medmoe-escape.txt")


# -- a real model, end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_hf_model_runs_every_task(tiny_model_dir):
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir},device=cpu",
        tasks=["medmoe"],
        task_manager=_manager(),
        limit=2,
        gen_kwargs={"max_gen_toks": 16},
        confirm_run_unsafe_code=True,
        bootstrap_iters=0,
    )
    for task, values in _scores(results).items():
        assert results["n-samples"][task]["effective"] == 2, task
        assert all(0.0 <= v <= 1.0 for v in values.values()), (task, values)
    assert results["configs"]["medmoe_mbpp"]["metadata"]["medmoe_data"] == "bundled"


@pytest.mark.slow
def test_names_resolve_next_to_builtins_without_overriding_them():
    """What ``lm-eval validate --include_path tasks`` checks, plus: no built-in task is shadowed."""
    manager = TaskManager(include_path=str(tasks_dir()))
    ours = [*TASKS, *GROUPS, "medmoe_ppl", "medmoe_ppl_biomedical", "medmoe_ppl_legal", "medmoe_ppl_code"]
    assert sorted(manager.match_tasks(ours)) == sorted(ours)
    project = {name for name, entry in manager.task_index.items() if entry.yaml_path and tasks_dir() in entry.yaml_path.parents}
    assert project == set(ours) and all(name.startswith("medmoe") for name in project)
    assert "mbpp" in manager.all_tasks and "medmcqa" in manager.all_tasks


def test_a_run_of_project_tasks_only_indexes_only_the_project_tasks():
    """The demo's runs skip lm-eval's own index (seconds per process); a run naming a built-in gets it."""
    from medmoe_lm_eval.demo.runs import task_manager

    own = task_manager(tasks=["medmoe_medmcqa", "medmoe_ppl"])
    assert "medmoe_medmcqa" in own.all_tasks and "medmcqa" not in own.all_tasks
    assert all(entry.yaml_path is None or tasks_dir() in entry.yaml_path.parents for entry in own.task_index.values())
    mixed = task_manager(tasks=["medmoe_medmcqa", "medmcqa"])
    assert {"medmoe_medmcqa", "medmcqa"} <= set(mixed.all_tasks)
    assert task_manager() is mixed and task_manager(tasks=["medmoe_ppl"]) is own  # built once per process


@pytest.mark.slow
def test_cli_run_subprocess_with_env_switch(tiny_model_dir, tmp_path):
    env = {**os.environ, "MEDMOE_DATA": "bundled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir}",
            "--device",
            "cpu",
            "--tasks",
            "medmoe_legal_ruleqa,medmoe_mbpp",
            "--include_path",
            str(tasks_dir()),
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=8",
            "--confirm_run_unsafe_code",
            "--output_path",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (result_file,) = (tmp_path / "out").rglob("results_*.json")
    saved = json.loads(result_file.read_text())
    assert set(saved["results"]) == {"medmoe_legal_ruleqa", "medmoe_mbpp"}
    assert "rougeL_f1,none" in saved["results"]["medmoe_legal_ruleqa"]
    assert "pass_at_1,extract_code" in saved["results"]["medmoe_mbpp"]
    assert saved["n-samples"]["medmoe_mbpp"]["effective"] == 2

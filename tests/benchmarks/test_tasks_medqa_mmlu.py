"""MedQA and the MMLU medical subjects: prompts as lm-eval's, known answers, aggregation, data paths."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import lm_eval
import pytest
import yaml
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from scripted_lm import ScriptedLM

from medmoe_lm_eval.benchmarks import registry
from medmoe_lm_eval.benchmarks.domains import task_domain
from medmoe_lm_eval.benchmarks.rows import DataError, read_jsonl
from medmoe_lm_eval.benchmarks.sources import eval_docs, task_dataset
from medmoe_lm_eval.paths import bundled_data_dir, tasks_dir

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
SUBJECTS = registry.MMLU_MEDICAL_SUBJECTS
MMLU_TASKS = [f"medmoe_mmlu_{s}" for s in SUBJECTS]
OPEN_MEDICAL = ["medmoe_medmcqa", "medmoe_medqa", "medmoe_pubmedqa", *MMLU_TASKS]
MEDQA_ROWS = read_jsonl(bundled_data_dir() / "medqa.jsonl")
MMLU_ROWS = read_jsonl(bundled_data_dir() / "mmlu_medical.jsonl")
MMLU_DEV = read_jsonl(bundled_data_dir() / "mmlu_medical_dev.jsonl")


def _manager(data: str = "bundled") -> TaskManager:
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"medmoe_data": data})


def _task(name: str, data: str = "bundled"):
    return _manager(data).load([name])["tasks"][name]


def _evaluate(lm, tasks: list[str], data: str = "bundled") -> dict:
    manager = _manager(data)
    return lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, bootstrap_iters=0)


def _per_subject(rows: list[dict]) -> dict[str, int]:
    return {s: sum(r["subject"] == s for r in rows) for s in SUBJECTS}


# -- definitions -----------------------------------------------------------------------------


def test_new_tasks_are_biomedical_and_groups_hold_them():
    manager = _manager()
    for name in ["medmoe_medqa", *MMLU_TASKS]:
        assert manager.load([name])["tasks"][name].config.metadata["domain"] == "biomedical"
        assert task_domain(name) == "biomedical"
    groups = manager.load(["medmoe_open_medical"])["groups"]
    assert sorted(t.task_name for t in groups["medmoe_open_medical"].get_all_tasks()) == sorted(OPEN_MEDICAL)
    medical = manager.load(["medmoe_medical"])["groups"]["medmoe_medical"]
    assert {t.task_name for t in medical.get_all_tasks()} == {"medmoe_pubmedqa", "medmoe_medmcqa", "medmoe_medquad", "medmoe_medqa", *MMLU_TASKS}


def test_medqa_prompt_is_lm_evals_medqa_4options_prompt():
    spec = importlib.util.spec_from_file_location("preprocess_medqa", LM_EVAL_TASKS / "medqa" / "preprocess_medqa.py")
    assert spec and spec.loader
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)
    task = _task("medmoe_medqa")
    for doc in task.test_docs().select(range(5)):
        # the same question in the column schema of lm-eval's GBaker/MedQA-USMLE-4-options-hf
        hf_doc = {"sent1": doc["question"], **{f"ending{i}": doc["options"][k] for i, k in enumerate("ABCD")}, "label": "ABCD".index(doc["answer_idx"])}
        assert task.doc_to_text(doc) == upstream.doc_to_text(hf_doc)
        assert task.doc_to_choice(doc)[upstream.doc_to_target(hf_doc)] == doc["answer_idx"]


def test_mmlu_prompt_description_and_fewshot_follow_lm_evals_mmlu():
    template = yaml.safe_load((LM_EVAL_TASKS / "mmlu" / "default" / "_default_template_yaml").read_text())
    for subject in ("anatomy", "clinical_knowledge"):
        upstream = yaml.safe_load((LM_EVAL_TASKS / "mmlu" / "default" / f"mmlu_{subject}.yaml").read_text())
        task = _task(f"medmoe_mmlu_{subject}")
        assert task.config.doc_to_text == template["doc_to_text"]
        assert task.config.description == upstream["description"]
        assert task.config.fewshot_split == "dev" and task.config.fewshot_config.sampler == "first_n"
    task = _task("medmoe_mmlu_anatomy")
    doc = task.test_docs()[0]
    dev = [r for r in MMLU_DEV if r["subject"] == "anatomy"]
    prompt = task.fewshot_context(doc, num_fewshot=2)
    first = f"{dev[0]['question'].strip()}\nA. {dev[0]['choices'][0]}"
    assert prompt.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n" + first)
    assert dev[1]["question"].strip() in prompt and dev[2]["question"].strip() not in prompt  # first n of dev, in order
    assert prompt.endswith(f"D. {doc['choices'][3]}\nAnswer:") and prompt.count("Answer:") == 3


# -- known answers on every bundled row --------------------------------------------------------


def test_known_answers_gold_and_wrong_every_row_scripted_lm():
    for mode, expected in (("gold", 1.0), ("wrong", 0.0)):
        results = _evaluate(ScriptedLM(_manager(), mode), ["medmoe_medqa", "medmoe_mmlu_medical"])
        for name in ["medmoe_medqa", *MMLU_TASKS, "medmoe_mmlu_medical"]:
            assert results["results"][name]["acc,none"] == expected, (mode, name)
        assert results["results"]["medmoe_medqa"]["acc_norm,none"] == expected
        # gold mode: log-likelihood 0 on the gold option and -5 on the other three, so every row is
        # right with confidence p = 1 / (1 + 3 e^-5); wrong mode: 0 on the three others and -5 on the
        # gold, so every row is wrong with confidence a = 1 / (3 + e^-5) and the gold gets g = e^-5 a
        if mode == "gold":
            p, q = 1 / (1 + 3 * math.exp(-5)), math.exp(-5) / (1 + 3 * math.exp(-5))
            ece, brier = 1 - p, (1 - p) ** 2 + 3 * q**2
        else:
            a = 1 / (3 + math.exp(-5))
            ece, brier = a, (1 - math.exp(-5) * a) ** 2 + 3 * a**2
        for name in ["medmoe_medqa", *MMLU_TASKS]:
            assert results["results"][name]["ece,none"] == pytest.approx(ece, abs=1e-9), (mode, name)
            assert results["results"][name]["brier_score,none"] == pytest.approx(brier, abs=1e-9), (mode, name)
        assert results["n-samples"]["medmoe_medqa"]["effective"] == len(MEDQA_ROWS) == 300
        for subject, n in _per_subject(MMLU_ROWS).items():
            assert results["n-samples"][f"medmoe_mmlu_{subject}"]["effective"] == n > 0


class _GoldOnSome(ScriptedLM):
    """Gold on the listed tasks, wrong on every other: group scores become hand-computable."""

    def __init__(self, manager: TaskManager, gold_tasks: set[str]) -> None:
        super().__init__(manager)
        self.gold_tasks = gold_tasks

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        out = []
        for inst in requests:
            favoured = (inst.idx == self._gold_index(inst)) == (inst.metadata[0] in self.gold_tasks)
            out.append((0.0, True) if favoured else (-5.0, False))
        return out


def test_mmlu_group_weights_by_size_open_medical_is_plain_mean_scripted_lm():
    sizes = _per_subject(MMLU_ROWS)  # anatomy 14 of 123 rows
    lm = _GoldOnSome(_manager(), {"medmoe_mmlu_anatomy"})
    mmlu = _evaluate(lm, ["medmoe_mmlu_medical"])["results"]["medmoe_mmlu_medical"]["acc,none"]
    assert mmlu == pytest.approx(14 / 123) and sizes["anatomy"] == 14 and sum(sizes.values()) == 123
    lm = _GoldOnSome(_manager(), {"medmoe_medqa", "medmoe_mmlu_anatomy"})
    assert _evaluate(lm, ["medmoe_open_medical"])["results"]["medmoe_open_medical"]["acc,none"] == pytest.approx(2 / 9)


# -- data sources ------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_folder_source_each_subject_selects_its_rows(tmp_path):
    _write(tmp_path / "medqa.jsonl", MEDQA_ROWS[:4])
    mixed = [*[r for r in MMLU_ROWS if r["subject"] == "anatomy"][:2], *[r for r in MMLU_ROWS if r["subject"] == "medical_genetics"][:3]]
    _write(tmp_path / "mmlu_medical.jsonl", mixed[::-1])
    assert [d["question"] for d in eval_docs("medqa", str(tmp_path))] == [r["question"] for r in MEDQA_ROWS[:4]]
    genetics = task_dataset("mmlu_medical_genetics", str(tmp_path))
    assert [d["subject"] for d in genetics["test"]] == ["medical_genetics"] * 3
    # no mmlu_medical_dev.jsonl in the folder: MMLU's own dev rows (bundled) are the few-shot examples
    assert [d["question"] for d in genetics["dev"]] == [r["question"] for r in MMLU_DEV if r["subject"] == "medical_genetics"]
    with pytest.raises(DataError, match=r"mmlu_medical\.jsonl: field 'subject': no rows with subject 'college_biology'"):
        eval_docs("mmlu_college_biology", str(tmp_path))


def test_bad_rows_name_file_row_and_field(tmp_path):
    bad = [dict(r) for r in MEDQA_ROWS[:3]]
    bad[1]["answer_idx"] = "E"
    _write(tmp_path / "medqa.jsonl", bad)
    with pytest.raises(DataError) as err:
        eval_docs("medqa", str(tmp_path))
    assert "medqa.jsonl: row 2: field 'answer_idx'" in str(err.value) and "fix:" in str(err.value)
    mmlu = [dict(r) for r in MMLU_ROWS[:2]]
    mmlu[0]["choices"] = mmlu[0]["choices"][:3]
    _write(tmp_path / "mmlu_medical.jsonl", mmlu)
    with pytest.raises(DataError, match=r"mmlu_medical\.jsonl: row 1: field 'choices'"):
        eval_docs(f"mmlu_{mmlu[1]['subject']}", str(tmp_path))


def test_hub_path_asks_for_test_split_and_dev_fewshot_injected_loader(monkeypatch):
    asked: list[tuple] = []

    def recording_load_dataset(path, name=None, split=None, **kwargs):
        asked.append((path, name, split))
        if path == "cais/mmlu":
            return datasets.Dataset.from_list([r for r in (MMLU_DEV if split == "dev" else MMLU_ROWS) if r["subject"] == name])
        return datasets.Dataset.from_list(MEDQA_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", recording_load_dataset)
    monkeypatch.delenv("MEDMOE_DATA", raising=False)
    assert len(task_dataset("medqa")["test"]) == 300
    anatomy = task_dataset("mmlu_anatomy")
    assert asked == [("GBaker/MedQA-USMLE-4-options", None, "test"), ("cais/mmlu", "anatomy", "test"), ("cais/mmlu", "anatomy", "dev")]
    assert len(anatomy["test"]) == 14 and len(anatomy["dev"]) == 5


@pytest.mark.slow
def test_cli_runs_new_tasks_from_a_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "medqa.jsonl", MEDQA_ROWS[:3])
    _write(data / "mmlu_medical.jsonl", MMLU_ROWS)
    env = {**os.environ, "MEDMOE_DATA": str(data), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    args = ["--model", "dummy", "--tasks", "medmoe_medqa,medmoe_mmlu_medical", "--include_path", str(tasks_dir()), "--num_fewshot", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", *args, "--output_path", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (result_file,) = (tmp_path / "out").rglob("results_*.json")
    saved = json.loads(result_file.read_text())
    assert saved["n-samples"]["medmoe_medqa"]["effective"] == 3
    assert saved["n-samples"]["medmoe_mmlu_professional_medicine"]["effective"] == _per_subject(MMLU_ROWS)["professional_medicine"]
    assert 0.0 <= saved["results"]["medmoe_mmlu_medical"]["acc,none"] <= 1.0

"""A results folder produced by real lm-eval runs of tiny models, plus the awkward files users have.

Real runs (lm-eval's ``simple_evaluate`` in this process, saved by its ``EvaluationTracker``):
- a plain ``hf`` run of the tiny base model (no profile, no medmoe sections);
- a plain ``hf`` run of the legal expert on the project's own ``medmoe_pubmedqa`` and
  ``medmoe_medmcqa`` tasks (bundled data);
- ``tiny-bio`` (one biomedical expert) evaluated twice: a re-run, so the latest must win;
- ``moe-oracle`` and ``moe-keywords``: the same three experts behind the oracle router and behind
  a keyword router that misroutes some questions (routing logs, regret);
- a candidate whose name carries HTML and non-ASCII text;
- ``tiny-code-noprofile``: a medmoe run with profiling switched off.

Files written afterwards, each labelled as such: a truncated copy of a results file, a copy
relabelled as a GPTQ build (``"synthetic"`` key in ``config.medmoe``: no GPTQ kernel ran), a copy
with an unknown metric, and a JSON file that is not a results file.

The folder is built once per test session (module-level cache) and shared by every test module.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

TASK_DOMAINS = {"lbfx_bio": "biomedical", "lbfx_law": "legal", "lbfx_code": "code"}
HTML_NAME = '<b>Médecin</b> "模型" <script>alert(1)</script>'
KEYWORDS = {
    "biomedical": ["patient", "dose", "symptom", "diagnosis", "blood"],
    "legal": ["court", "contract", "statute", "plaintiff"],
    "code": ["python", "function", "loop", "variable"],
}

# Questions per task; a few code and legal questions use medical words, so the keyword router
# misroutes them while the oracle router does not.
QUESTIONS = {
    "lbfx_bio": [
        ("Which organ pumps blood through the body?", ["heart", "liver", "lung", "kidney"]),
        ("A patient with a fever most likely has which symptom?", ["chills", "fracture", "rash", "cough"]),
        ("What does a high dose of insulin cause?", ["hypoglycemia", "fever", "anemia", "gout"]),
        ("Which vessel carries blood away from the heart?", ["artery", "vein", "capillary", "duct"]),
        ("Which test confirms a diagnosis of diabetes?", ["HbA1c", "ECG", "MRI", "x-ray"]),
        ("Where is bile produced?", ["liver", "pancreas", "spleen", "stomach"]),
    ],
    "lbfx_law": [
        ("Which court hears appeals from trial courts?", ["appellate", "small claims", "traffic", "probate"]),
        ("A contract signed under duress is usually what?", ["voidable", "valid", "criminal", "sealed"]),
        ("Who brings a civil suit?", ["plaintiff", "prosecutor", "jury", "clerk"]),
        ("A statute is made by which body?", ["legislature", "court", "police", "mayor"]),
        ("Is a doctor liable when a patient is harmed by negligence?", ["yes", "no", "never", "only abroad"]),
        ("Which document transfers land?", ["deed", "will", "lease", "receipt"]),
    ],
    "lbfx_code": [
        ("Which keyword defines a function in Python?", ["def", "func", "fn", "lambda"]),
        ("What does a for loop do?", ["repeats", "stops", "imports", "prints"]),
        ("Which type holds True or False?", ["bool", "int", "str", "list"]),
        ("A function that computes a drug dose for a patient returns what type?", ["float", "dict", "None", "set"]),
        ("How do you name a variable in Python?", ["snake_case", "CAPS", "dots", "spaces"]),
        ("Which symbol starts a comment in Python?", ["#", "//", "--", "%"]),
    ],
}
LIMIT = 6
PROJECT_TASKS = ("medmoe_pubmedqa", "medmoe_medmcqa")


@dataclass(frozen=True)
class BoardResults:
    """What the tests know about the folder they read."""

    root: Path  #: the results folder (what MEDMOE_RESULTS points at)
    tasks_dir: Path
    truncated: Path
    real_candidates: tuple[str, ...]
    synthetic_candidates: tuple[str, ...]
    project_candidate: str  #: the plain run on the project's own tasks
    html_name: str = HTML_NAME  #: a real candidate whose name carries HTML and non-ASCII text


def write_tasks(folder: Path) -> Path:
    """Three four-choice tasks over local JSONL, each with ``metadata.domain``."""
    for task, questions in QUESTIONS.items():
        task_dir = folder / task
        task_dir.mkdir(parents=True, exist_ok=True)
        rows = [{"question": q, "choices": choices, "answer": 0} for q, choices in questions]
        (task_dir / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        (task_dir / f"{task}.yaml").write_text(
            f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {task_dir / 'data.jsonl'}\n"
            "test_split: test\noutput_type: multiple_choice\n"
            'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: answer\n'
            "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
            "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
            f"metadata:\n  version: 1.0\n  domain: {TASK_DOMAINS[task]}\n",
            encoding="utf-8",
        )
    return folder


def _expert_line(name: str, domain: str, path: Path) -> str:
    return f"  - {{name: {name}, domain: {domain}, backend: hf, model: '{path}', device: cpu}}\n"


def write_adapters(folder: Path, experts: dict[str, Path]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    three = "".join(_expert_line(d[:3], d, p) for d, p in experts.items())
    domains = json.dumps(TASK_DOMAINS)
    texts = {
        "tiny-bio": "name: tiny-bio\nkind: single\nexperts:\n" + _expert_line("bio", "biomedical", experts["biomedical"]),
        "moe-oracle": f"name: moe-oracle\nkind: moe\nexperts:\n{three}router:\n  type: oracle\n  task_domains: {domains}\n",
        "moe-keywords": f"name: moe-keywords\nkind: moe\nexperts:\n{three}router:\n  type: keywords\n  keywords: {json.dumps(KEYWORDS)}\n  task_domains: {domains}\n",
        "html-name": f"name: {json.dumps(HTML_NAME)}\nkind: single\nexperts:\n" + _expert_line("law", "legal", experts["legal"]),
        "tiny-code-noprofile": "name: tiny-code-noprofile\nkind: single\nprofile: {enabled: false}\nexperts:\n" + _expert_line("code", "code", experts["code"]),
    }
    paths = {}
    for key, text in texts.items():
        paths[key] = folder / f"{key}.yaml"
        paths[key].write_text(text, encoding="utf-8")
    return paths


def _evaluate(
    out: Path, manager, model: str, model_args: dict[str, str], tasks: tuple[str, ...] = tuple(TASK_DOMAINS), limit: int = LIMIT, log_samples: bool = True
) -> None:
    """One lm-eval run, saved by lm-eval's own ``EvaluationTracker`` exactly as its CLI does
    (``--log_samples``: the results file, then one ``samples_<task>_<date>.jsonl`` per task)."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model=model, model_args=model_args, tasks=list(tasks), limit=limit, device="cpu", task_manager=manager,
        evaluation_tracker=tracker, log_samples=log_samples,
    )  # fmt: skip
    samples = results.pop("samples", None) if log_samples else None
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"] if samples else ():
        tracker.save_results_samples(task_name=task, samples=samples[task])


def _medmoe_args(adapter: Path, out: Path) -> dict[str, str]:
    from lm_eval.utils import sanitize_model_name

    from medmoe_lm_eval.harness.config import load_adapter

    name = load_adapter(adapter).name
    return {"adapter": str(adapter), "model": name, "log_dir": str(out / sanitize_model_name(name))}


def run_real(out: Path, tasks_dir: Path, base_model: Path, adapters: dict[str, Path], legal_model: Path) -> None:
    """The real lm-eval runs; ``tiny-bio`` twice (a re-run, one second later at least).

    Task managers over task folders only (no index of lm-eval's built-ins) keep each run to seconds.
    """
    from lm_eval.tasks import TaskManager

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.paths import tasks_dir as project_tasks

    register()
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    _evaluate(out, manager, "hf", {"pretrained": str(base_model)})
    ours = TaskManager(include_path=str(project_tasks()), include_defaults=False, metadata={"medmoe_data": "bundled"})
    _evaluate(out, ours, "hf", {"pretrained": str(legal_model)}, PROJECT_TASKS)
    for key in ("tiny-bio", "moe-oracle", "moe-keywords", "html-name", "tiny-code-noprofile"):
        _evaluate(out, manager, "medmoe", _medmoe_args(adapters[key], out))
    time.sleep(1.0)
    _evaluate(out, manager, "medmoe", _medmoe_args(adapters["tiny-bio"], out))


def _results_file(out: Path, folder: str) -> Path:
    return sorted((out / folder).glob("results_*.json"))[0]


def write_awkward_files(out: Path) -> tuple[Path, tuple[str, ...]]:
    """Truncated, relabelled, unknown-metric and non-results files next to the real runs."""
    plain = next(
        d
        for d in (json.loads(f.read_text(encoding="utf-8")) for f in sorted(out.glob("*/results_*.json")))
        if d["config"]["model"] == "hf" and set(d["results"]) == set(TASK_DOMAINS)
    )
    bio = _results_file(out, "tiny-bio")
    text = bio.read_text(encoding="utf-8")
    broken = out / "broken" / "results_2026-01-01T00-00-00.000000.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(text[: len(text) // 2], encoding="utf-8")

    data = json.loads(text)
    gptq = copy.deepcopy(data)
    medmoe = gptq["config"]["medmoe"]
    medmoe.update(candidate="tiny-bio-gptq-synthetic", label="gptq", synthetic="relabelled copy of tiny-bio's real run; no GPTQ kernel ran")
    for expert in medmoe["experts"].values():
        expert["quantization"] = {"method": "gptq", "bits": 4, "group_size": 128, "type": None}
    profile = gptq["config"].get("medmoe_profile") or {}
    if isinstance(profile.get("memory"), dict) and profile["memory"].get("peak_rss_bytes"):
        profile["memory"]["peak_rss_bytes"] = int(profile["memory"]["peak_rss_bytes"] * 0.6)
    _write(out / "synthetic-gptq" / "results_2026-02-01T00-00-00.000000.json", gptq)

    plain["config"]["model_args"] = {"pretrained": "/synthetic/model-mystery"}
    for scores in plain["results"].values():
        scores["mystery_score,none"] = 0.42
    _write(out / "synthetic-mystery" / "results_2026-02-01T00-00-00.000000.json", plain)
    _write(out / "notes.json", ["not", "a", "results", "file"])
    return broken, ("tiny-bio-gptq-synthetic", "model-mystery")


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def build_board_results(workdir: Path, base_model: Path, experts: dict[str, Path]) -> BoardResults:
    """Build the whole folder under ``workdir`` (about half a minute on two cores)."""
    tasks_dir = write_tasks(workdir / "tasks")
    adapters = write_adapters(workdir / "adapters", experts)
    out = workdir / "results"
    run_real(out, tasks_dir, base_model, adapters, experts["legal"])
    truncated, synthetic = write_awkward_files(out)
    real = ("model", experts["legal"].name, "tiny-bio", "moe-oracle", "moe-keywords", HTML_NAME, "tiny-code-noprofile")
    return BoardResults(out, tasks_dir, truncated, real, synthetic, experts["legal"].name)


_BUILT: dict[str, BoardResults] = {}


@pytest.fixture(scope="session")
def board_results(tmp_path_factory, tiny_model_dir, tiny_experts) -> BoardResults:
    """The shared results folder; built on first use in a session, then reused."""
    if "board" not in _BUILT:
        _BUILT["board"] = build_board_results(tmp_path_factory.mktemp("board"), tiny_model_dir, tiny_experts)
    return _BUILT["board"]

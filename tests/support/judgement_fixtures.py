"""A small results folder of real lm-eval runs for fidelity, calibration and the router scorecard.

Real runs (``simple_evaluate`` + lm-eval's ``EvaluationTracker``, ``--log_samples``) of tiny Llamas
through the ``medmoe`` model:

- ``parent``: the biomedical expert alone;
- ``copy-same``: the very same model under another name with ``parent: parent`` (a perfect copy);
- ``copy-other``: the legal expert with ``parent: parent`` (a copy that answers differently);
- ``moe-keywords`` and ``moe-oracle``: the three experts behind a keyword router and the oracle.

Tasks: the three four-choice ``lbfx_*`` tasks of ``results_fixtures`` (one per domain), the
project's ``medmoe_medmcqa`` (bundled rows, with subjects, ``ece`` and ``brier_score``), a
generation task (``medmoe_medquad``, 6 tokens) and a perplexity task (``medmoe_ppl_biomedical``).
Built once per test session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from results_fixtures import KEYWORDS, TASK_DOMAINS, _expert_line, _medmoe_args, write_tasks

PROJECT = ("medmoe_medmcqa", "medmoe_medquad", "medmoe_ppl_biomedical")
LIMIT = 5


@dataclass(frozen=True)
class JudgementResults:
    root: Path
    adapters: dict[str, Path]


def write_adapters(folder: Path, experts: dict[str, Path]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    three = "".join(_expert_line(d[:3], d, p) for d, p in experts.items())
    domains = json.dumps(TASK_DOMAINS)
    bio = _expert_line("bio", "biomedical", experts["biomedical"])
    texts = {
        "parent": "name: parent\nkind: single\nexperts:\n" + bio,
        "copy-same": "name: copy-same\nkind: single\nparent: parent\nexperts:\n" + bio,
        "copy-other": "name: copy-other\nkind: single\nparent: parent\nexperts:\n" + _expert_line("law", "legal", experts["legal"]),
        "moe-oracle": f"name: moe-oracle\nkind: moe\nexperts:\n{three}router:\n  type: oracle\n  task_domains: {domains}\n",
        "moe-keywords": f"name: moe-keywords\nkind: moe\nexperts:\n{three}router:\n  type: keywords\n  keywords: {json.dumps(KEYWORDS)}\n  task_domains: {domains}\n",
    }
    paths = {}
    for key, text in texts.items():  # no efficiency profile: these tests read quality and routing only
        paths[key] = folder / f"{key}.yaml"
        paths[key].write_text(text.replace("\nexperts:\n", "\nprofile: {enabled: false}\nexperts:\n", 1), encoding="utf-8")
    return paths


def _run(out: Path, manager, adapter: Path, tasks: list[str]) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="medmoe", model_args=_medmoe_args(adapter, out), tasks=tasks, limit=LIMIT, device="cpu", task_manager=manager,
        evaluation_tracker=tracker, log_samples=True, gen_kwargs="max_gen_toks=6",
    )  # fmt: skip
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])


def build(workdir: Path, experts: dict[str, Path]) -> JudgementResults:
    from lm_eval.tasks import TaskManager

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.paths import tasks_dir

    register()
    local = write_tasks(workdir / "tasks")
    manager = TaskManager(include_path=[str(local), str(tasks_dir())], include_defaults=False, metadata={"medmoe_data": "bundled"})
    adapters = write_adapters(workdir / "adapters", experts)
    out = workdir / "results"
    lbfx = list(TASK_DOMAINS)
    for name in ("parent", "copy-same"):
        _run(out, manager, adapters[name], [*lbfx, *PROJECT])
    _run(out, manager, adapters["copy-other"], [*lbfx, "medmoe_medmcqa"])
    for name in ("moe-keywords", "moe-oracle"):
        _run(out, manager, adapters[name], lbfx)
    return JudgementResults(out, adapters)


_BUILT: dict[str, JudgementResults] = {}


@pytest.fixture(scope="session")
def judgement_results(tmp_path_factory, tiny_experts) -> JudgementResults:
    if "j" not in _BUILT:
        _BUILT["j"] = build(tmp_path_factory.mktemp("judgements"), tiny_experts)
    return _BUILT["j"]

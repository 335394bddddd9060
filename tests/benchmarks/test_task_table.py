"""The benchmark table agrees with every task YAML, so the facts lm-eval reads and the ones the
harness and analysis read cannot drift apart (``benchmarks.task_table``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from medmoe_lm_eval.analysis.plan import available_rows
from medmoe_lm_eval.analysis.use_cases import FIGURES
from medmoe_lm_eval.benchmarks.domains import DOMAINS, task_domain
from medmoe_lm_eval.benchmarks.metric_directions import METRIC_DIRECTIONS, direction, main_metric
from medmoe_lm_eval.benchmarks.registry import BENCHMARKS
from medmoe_lm_eval.benchmarks.sources import DataSource
from medmoe_lm_eval.benchmarks.task_table import TASKS, task_benchmark
from medmoe_lm_eval.paths import tasks_dir


class _Loader(yaml.SafeLoader):
    """Task YAMLs without running their ``!function`` tags: a tag becomes the function's name."""


_Loader.add_multi_constructor("!function", lambda loader, suffix, node: str(loader.construct_scalar(node)).rsplit(".", 1)[-1])


def _task_yaml(path: Path) -> dict[str, Any]:
    """The YAML with its ``include`` merged under it, as lm-eval reads it."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    included = data.pop("include", None)
    return {**_task_yaml(path.parent / included), **data} if included else data


YAMLS = {data["task"]: data for data in map(_task_yaml, sorted(tasks_dir().glob("medmoe_*.yaml"))) if isinstance(data.get("task"), str)}


def test_every_task_yaml_has_a_row_and_every_row_a_yaml():
    assert set(YAMLS) == set(TASKS)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_yaml_agrees_with_the_table(task):
    facts, data = TASKS[task], YAMLS[task]
    meta = data["metadata"]
    assert meta["domain"] == facts.domain and facts.domain in DOMAINS
    assert meta.get("benchmark") == facts.benchmark
    assert tuple(meta.get("cluster_fields", ())) == facts.cluster_fields
    assert meta.get("cluster_cut", "") == facts.cluster_cut
    choices = data.get("doc_to_choice")
    assert (len(choices) if data["output_type"] == "multiple_choice" else None) == facts.n_options
    metrics = [m["metric"] for m in data["metric_list"]]
    assert (main_metric(metrics) or metrics[0]) == facts.metric
    for entry in data["metric_list"]:  # every direction the YAML states is the table of directions'
        assert entry["higher_is_better"] == direction(entry["metric"]), (task, entry["metric"])


def test_the_harness_and_the_analysis_read_the_table():
    """The domain the router and the oracle use, the benchmark ``medmoe plan`` counts, the hub source."""
    assert task_domain("medmoe_ppl_legal") == "legal" and task_domain("medmoe_mbpp") == "code"
    assert task_domain("medmoe_mbpp", {"medmoe_mbpp": "legal"}) == "legal"  # an adapter's override wins
    assert task_domain("mmlu_jurisprudence") == "legal" and task_domain("my_own_task") is None
    assert task_benchmark("medmoe_mmlu_anatomy") == "mmlu_anatomy" and task_benchmark("medmoe_ppl_code") is None
    assert available_rows("medmoe_mmlu_anatomy", DataSource("hub")) == 135  # cais/mmlu anatomy test
    assert TASKS["medmoe_pubmedqa"].hub == BENCHMARKS["pubmedqa"].hub
    assert TASKS["medmoe_ppl_code"].hub is None and not TASKS["medmoe_ppl_code"].higher_is_better


def test_every_benchmark_has_a_task_and_every_figure_a_direction():
    assert {t.benchmark for t in TASKS.values() if t.benchmark} == set(BENCHMARKS)
    assert all(f.column in METRIC_DIRECTIONS for f in FIGURES.values())
    assert [k for k, f in FIGURES.items() if f.higher_is_better] == ["accuracy", "throughput", "requests_per_s"]

"""How many items a task needs before any model runs (``medmoe plan``), against how many it has.

Per task: the items a paired comparison needs to detect ``delta`` with 80% power at the expected
discordance (:func:`.power.paired_n`), the unpaired figure beside it (what comparing two numbers
from different item sets would cost), and the rows the task scores from the data source
``MEDMOE_DATA`` selects: counted from the files for ``bundled`` or a folder, the published split
size (after the task's fixed selection) for the hub, which is not downloaded for this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from medmoe_lm_eval.analysis.power import ALPHA, POWER, paired_n, unpaired_n
from medmoe_lm_eval.benchmarks.registry import benchmark
from medmoe_lm_eval.benchmarks.sources import DataSource, eval_docs, resolve_source
from medmoe_lm_eval.benchmarks.task_table import task_benchmark
from medmoe_lm_eval.paths import tasks_dir


@dataclass(frozen=True)
class PlanRow:
    """One task's answer (the JSON object of ``medmoe plan --json``)."""

    task: str
    n_needed: int
    n_needed_unpaired: int
    n_available: int | None  #: rows the task scores from ``data_source``; None when unknown
    data_source: str  #: "bundled", "dir:<folder>" or "hub (published split size)"
    delta: float
    discordance: float

    @property
    def enough(self) -> bool | None:
        return None if self.n_available is None else self.n_available >= self.n_needed

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"enough": self.enough}


class _TolerantLoader(yaml.SafeLoader):
    """Reads task YAMLs without executing ``!function`` tags (they become None)."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@lru_cache(maxsize=4)
def _task_files(root: str) -> dict[str, dict[str, Any]]:
    """Task or group name -> its YAML (the project's ``tasks/``)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(root).glob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TolerantLoader)
        if not isinstance(data, dict):
            continue
        name = data["task"] if isinstance(data.get("task"), str) else data.get("group")
        if isinstance(name, str):
            found[name] = data
    return found


def expand_tasks(names: list[str]) -> list[str]:
    """Task names, groups (``medmoe_open_medical``) replaced by their tasks; unknown names raise ValueError."""
    files = _task_files(str(tasks_dir()))
    out: list[str] = []
    for name in names:
        data = files.get(name)
        if data is None:
            raise ValueError(f"unknown task {name!r}; fix: use one of the project's tasks or groups ({', '.join(sorted(files))})")
        members = data.get("task") if "group" in data else None
        out.extend(expand_tasks([str(m) for m in members]) if isinstance(members, list) else [name])
    return list(dict.fromkeys(out))


def available_rows(task: str, source: DataSource) -> int | None:
    """Rows ``task`` scores from ``source`` (None: no benchmark behind it, or an unknown hub size).

    The benchmark behind a task is the benchmark table's (``task_table``), not re-read from its YAML."""
    name = task_benchmark(task)
    if name is None:
        return None
    if source.kind == "hub":
        return benchmark(name).hub_rows
    return len(eval_docs(name, str(source.directory)))


def source_label(source: DataSource) -> str:
    return {"hub": "hub (published split size)", "bundled": "bundled"}.get(source.kind, f"dir:{source.directory}")


def plan(tasks: list[str], delta: float, discordance: float, accuracy: float = 0.5, alpha: float = ALPHA, power: float = POWER) -> list[PlanRow]:
    """Items needed per task to detect ``delta`` (paired at ``discordance``; unpaired at ``accuracy``)."""
    source = resolve_source(None)
    need, need_unpaired = paired_n(delta, discordance, alpha, power), unpaired_n(delta, accuracy, alpha, power)
    return [PlanRow(task, need, need_unpaired, available_rows(task, source), source_label(source), delta, discordance) for task in expand_tasks(tasks)]

"""What makes two runs of one task comparable: the run key, the data source, and why keys differ.

Two results for the same candidate and task may only replace each other when everything that
changes the number is the same: the adapter (its sha256, or the model reference of a plain run),
the task (name, version), where its rows came from (hub dataset, bundled sample, synthetic rows, a
local directory) and which rows were scored (lm-eval's ``task_hashes``, a hash over every
document, prompt and target, written when per-sample logs are kept), the sample counts and limit,
few-shot count, generation settings, chat template and lm-eval version. A ``--limit 5`` smoke run
or a run on the bundled sample therefore never replaces a full run on the real data: it gets its
own key and the board shows it apart with the reason (:func:`key_reasons`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medmoe_lm_eval.jsonio import loads_data
from medmoe_lm_eval.schema.run_record import RUN_SECTION, RunRecord
from medmoe_lm_eval.store.values import as_dict, number

SourceKind = Literal["hub", "bundled", "synthetic", "dir", "unknown"]

#: How trustworthy a source is as "the real data": lower wins when one key must stand for a task.
SOURCE_RANK: dict[str, int] = {"hub": 0, "dir": 0, "unknown": 1, "bundled": 2, "synthetic": 3}

#: What the board's badge says for each source.
SOURCE_BADGE: dict[str, str] = {"hub": "hub", "dir": "local directory", "bundled": "bundled sample", "synthetic": "synthetic", "unknown": "source unknown"}

_FILE_DATASETS = frozenset({"json", "csv", "parquet", "text", "arrow"})


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows came from: ``kind`` plus a human-readable origin (dataset id, folder)."""

    kind: SourceKind
    origin: str

    @property
    def badge(self) -> str:
        return SOURCE_BADGE[self.kind]

    @property
    def is_sample(self) -> bool:
        """A bundled sample or synthetic rows: fine for checking the pipeline, not a full score."""
        return self.kind in ("bundled", "synthetic")


@functools.lru_cache(maxsize=32)
def _bundled_is_synthetic(benchmark: str) -> bool:
    """Whether the bundled sample of ``benchmark`` is made of rows marked ``synthetic``."""
    from medmoe_lm_eval.paths import bundled_data_dir

    path = bundled_data_dir() / f"{benchmark}.jsonl"
    try:
        with path.open(encoding="utf-8") as fh:
            return any(loads_data(line).get("synthetic") for line in fh if line.strip())
    except (OSError, ValueError, AttributeError):
        return False


def _hub_label(benchmark: str) -> str:
    from medmoe_lm_eval.benchmarks.registry import BENCHMARKS

    bench = BENCHMARKS.get(benchmark)
    return bench.hub.label() if bench is not None else f"hub:{benchmark}"


def data_source(task_config: Mapping[str, Any], run_setting: Any = None) -> DataSource:
    """The source recorded in a task's config (``configs[task]`` of a results file).

    The project's tasks read the ``medmoe_data`` switch from their metadata (``--metadata``, the
    demo's task manager), else from ``MEDMOE_DATA``, which the ``medmoe`` model records for the
    run (``run_setting``, from ``config.medmoe.medmoe_data``); built-in lm-eval tasks name their
    hub dataset or local files.
    """
    meta = as_dict(task_config.get("metadata"))
    benchmark = meta.get("benchmark")
    setting = meta.get("medmoe_data") if meta.get("medmoe_data") not in (None, "") else run_setting
    if isinstance(benchmark, str) and benchmark:
        if setting == "bundled":
            return DataSource("synthetic" if _bundled_is_synthetic(benchmark) else "bundled", f"bundled:{benchmark}")
        if setting in (None, "", "hub"):
            return DataSource("hub", _hub_label(benchmark))
        return DataSource("dir", str(setting))
    path = task_config.get("dataset_path")
    if not isinstance(path, str) or not path:
        return DataSource("unknown", "not recorded")
    kwargs = as_dict(task_config.get("dataset_kwargs"))
    if path in _FILE_DATASETS or os.path.isabs(path):
        files = kwargs.get("data_files")
        first = next(iter(files.values()), None) if isinstance(files, dict) else files
        first = first[0] if isinstance(first, list) and first else first
        return DataSource("dir", os.path.dirname(str(first)) if first else path)
    name = task_config.get("dataset_name")
    revision = kwargs.get("revision")
    return DataSource("hub", f"hub:{path}" + (f"[{name}]" if name else "") + (f"@{revision}" if revision else ""))


@dataclass(frozen=True)
class RunKey:
    """Everything that must agree for two runs of one task to replace each other."""

    adapter: str  #: the adapter's sha256, or ``model:<reference>`` for a plain lm-eval run
    task: str
    task_version: str | None
    source_kind: str
    source_origin: str
    rows_fingerprint: str | None  #: lm-eval's task hash (documents, prompts, targets); None without samples
    n_original: float | None
    n_effective: float | None
    limit: float | None
    num_fewshot: float | None
    gen_kwargs: str
    chat_template: str | None
    lm_eval_version: str | None

    def digest(self) -> str:
        """A short stable id of the key (what the frame's ``run_key`` column holds)."""
        text = json.dumps(list(vars(self).values()), default=str)  # field order is fixed; a flat record (asdict is 10x slower)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def task_part(self) -> tuple[Any, ...]:
        """The key without the adapter: what two *candidates* must share to be scored alike."""
        return tuple(v for k, v in vars(self).items() if k != "adapter")

    def settings(self) -> str:
        """What is *asked* on the task (version, data, n-shot, generation, chat template) as one
        string: candidates are ranked together on a task only when it agrees. Limits and row
        counts may differ: the ranking then pairs the runs on their common documents."""
        return "\x1f".join(map(str, (self.task_version, self.source_kind, self.source_origin, self.num_fewshot, self.gen_kwargs, self.chat_template)))

    @property
    def is_limited(self) -> bool:
        return self.limit is not None or (self.n_original is not None and self.n_effective is not None and self.n_effective < self.n_original)


def _count(value: Any) -> float | None:
    out = number(value)
    return None if out != out else out


def _gen_kwargs(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value or "{}").strip() or "{}"


def run_key(data: Mapping[str, Any], task: str, adapter: str) -> RunKey:
    """The key of ``task`` in one results file (``data``) evaluated with ``adapter``."""
    config = as_dict(data.get("config"))
    counts = as_dict(as_dict(data.get("n-samples")).get(task))
    source = data_source(as_dict(as_dict(data.get("configs")).get(task)), RunRecord.read(as_dict(config.get(RUN_SECTION))).medmoe_data)
    template = data.get("chat_template_sha") or data.get("chat_template")
    return RunKey(
        adapter=adapter, task=task, task_version=str(as_dict(data.get("versions")).get(task, "")) or None,
        source_kind=source.kind, source_origin=source.origin,
        rows_fingerprint=as_dict(data.get("task_hashes")).get(task) or None,
        n_original=_count(counts.get("original")), n_effective=_count(counts.get("effective")),
        limit=_count(config.get("limit")), num_fewshot=_count(as_dict(data.get("n-shot")).get(task)),
        gen_kwargs=_gen_kwargs(config.get("gen_kwargs")), chat_template=str(template) if template else None,
        lm_eval_version=data.get("lm_eval_version"),
    )  # fmt: skip


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def key_reasons(key: RunKey, reference: RunKey) -> list[str]:
    """Short phrases saying how ``key`` differs from ``reference`` (e.g. ``"limit 5"``, ``"bundled sample"``)."""
    out: list[str] = []
    if key.limit != reference.limit:
        out.append(f"limit {_fmt(key.limit)}")
    elif key.n_effective != reference.n_effective:
        out.append(f"{_fmt(key.n_effective)} of {_fmt(key.n_original)} rows")
    if key.source_kind != reference.source_kind:
        out.append(SOURCE_BADGE[key.source_kind])
    elif key.source_origin != reference.source_origin:
        out.append(f"data from {key.source_origin}")
    if key.adapter != reference.adapter:
        out.append(f"adapter changed ({key.adapter[:14]})")
    if key.task_version != reference.task_version:
        out.append(f"task version {key.task_version}")
    if key.num_fewshot != reference.num_fewshot:
        out.append(f"{_fmt(key.num_fewshot)}-shot")
    if key.gen_kwargs != reference.gen_kwargs:
        out.append(f"generation kwargs {key.gen_kwargs}")
    if key.chat_template != reference.chat_template:
        out.append("chat template differs")
    if key.lm_eval_version != reference.lm_eval_version:
        out.append(f"lm-eval {key.lm_eval_version}")
    if not out and key.rows_fingerprint != reference.rows_fingerprint:
        out.append("no per-sample log" if key.rows_fingerprint is None else "different rows")
    return out or ["another comparability key"]


def preference(key: RunKey) -> tuple[int, int, float]:
    """Sort key choosing which key stands for a candidate's task on the board (smaller wins):
    real data before samples, full runs before limited ones, more rows before fewer."""
    return (SOURCE_RANK.get(key.source_kind, 1), int(key.is_limited), -(key.n_effective or 0.0))

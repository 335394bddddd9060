"""The records the store hands upward: one results file (``RunInfo``), a folder (``ResultsSet``), a problem (``ReadIssue``).

Everything above the store works on these and on the tidy frame (:data:`FRAME_COLUMNS`), never
on lm-eval's JSON, so a schema change upstream is absorbed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    from medmoe_lm_eval.schema.run_record import RunRecord
    from medmoe_lm_eval.store.run_key import RunKey

#: Columns of the tidy frame, in display order.
FRAME_COLUMNS: tuple[str, ...] = (
    "candidate", "run_id", "date", "task", "domain", "metric", "filter", "value", "stderr",
    "higher_is_better", "is_group", "kind", "label", "adapter_kind", "backend", "quantization",
    "model_type", "router_type", "num_parameters", "n_samples", "num_fewshot", "profiled",
    "latency_ms_p50", "latency_ms_p95", "requests_per_s", "generated_tokens_per_s",
    "peak_memory_bytes", "energy_j", "energy_per_correct_j", "adapter_sha256", "lm_eval_version",
    # efficiency figures added with single-stream latency (profiling.task_efficiency.EFFICIENCY_COLUMNS)
    "ttft_ms_p50", "tpot_ms_p50", "batch_latency_ms_p50", "batch_latency_ms_p95", "requests_served", "expert_calls",
    "cache_share", "energy_source", "latency_samples_ms", "ttft_samples_ms", "energy_per_request_j",
    "task_version", "task_hash", "git_hash", "hardware", "source_file", "latest",
    "data_source", "data_origin", "limit", "rows_fingerprint", "run_key", "task_settings", "variant", "samples_file", "sandbox", "n_choices",
)  # fmt: skip


#: How the leaderboard colours candidates, from ``config.medmoe.label`` or the plain run's args.
KIND_BY_LABEL_PREFIX = {"full": "full", "awq": "AWQ", "gptq": "GPTQ", "gguf": "GGUF", "moe": "MoE", "ensemble": "MoE"}


@dataclass(frozen=True)
class ReadIssue:
    """Something odd about one file, shown to the user instead of failing the whole board."""

    file: str
    message: str
    level: Literal["warning", "info"] = "warning"

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class RunInfo:
    """One results file: provenance plus the raw medmoe sections the detail views show."""

    run_id: str
    file: str
    candidate: str
    date: pd.Timestamp
    model_type: str
    model_args: Any
    medmoe: dict[str, Any] | None  #: the run record as written (``config.medmoe``), for detail views
    record: RunRecord | None  #: the same, read through the schema
    profile: dict[str, Any] | None
    routing_log: str | None
    lm_eval_version: str | None
    transformers_version: str | None
    git_hash: str | None
    hardware: str | None
    tasks: list[str]
    latest: bool = True
    #: task -> its cluster spec (``store.samples.ClusterSpec``) when the task's metadata names one
    clusters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResultsSet:
    """Everything read from one results folder.

    ``frame`` holds the rows on the board (per candidate and task, the newest run of the key that
    stands for it); ``apart`` the newest run of every other key, with the reason in ``variant``;
    ``history`` every row read. ``keys`` maps a ``run_key`` digest to its :class:`RunKey`.
    """

    root: str
    frame: pd.DataFrame
    history: pd.DataFrame
    runs: dict[str, RunInfo]
    issues: list[ReadIssue] = field(default_factory=list)
    apart: pd.DataFrame = field(default_factory=pd.DataFrame)
    keys: dict[str, RunKey] = field(default_factory=dict)

    @property
    def warnings(self) -> list[ReadIssue]:
        return [i for i in self.issues if i.level == "warning"]

    def candidates(self) -> list[str]:
        return sorted(self.frame["candidate"].unique()) if not self.frame.empty else []

    def latest_runs(self, candidate: str) -> list[RunInfo]:
        """The runs that feed ``candidate``'s current rows, newest first."""
        ids = self.frame.loc[self.frame["candidate"] == candidate, "run_id"].unique()
        return sorted((self.runs[i] for i in ids), key=lambda r: r.date, reverse=True)

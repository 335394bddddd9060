"""Reading lm-eval runs into one tidy frame: the only module that knows the on-disk schema.

lm-eval writes ``<output_path>/<model>/results_<date>.json``. A ``medmoe`` run adds
``config.medmoe`` (candidate, kind, adapter, experts, routing summary) and
``config.medmoe_profile`` (latency, throughput, memory, energy), with a routing log beside it.
Plain runs of other model types have neither and are shown without efficiency figures.

The frame has one row per candidate x task x metric (see :data:`FRAME_COLUMNS`). Reading never
raises on bad input: each unreadable or odd file becomes a :class:`ReadIssue` the views show, so a
truncated JSON, a run without a profile, or an unknown metric costs a warning, not the board.
Re-runs of one candidate and task keep the newest in ``frame``; ``history`` keeps them all.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medmoe_lm_eval.ranking import (
    ACCURACY_METRICS,
    METRIC_DIRECTIONS,
    candidate_figures,
    direction,
    main_metric,
    main_metric_rows,
    task_win_rates,
)

#: Columns of the tidy frame, in display order.
FRAME_COLUMNS: tuple[str, ...] = (
    "candidate", "run_id", "date", "task", "domain", "metric", "filter", "value", "stderr",
    "higher_is_better", "is_group", "kind", "label", "adapter_kind", "backend", "quantization",
    "model_type", "router_type", "num_parameters", "n_samples", "num_fewshot", "profiled",
    "latency_ms_p50", "latency_ms_p95", "requests_per_s", "generated_tokens_per_s",
    "peak_memory_bytes", "energy_j", "energy_per_correct_j", "adapter_sha256", "lm_eval_version",
    "task_version", "task_hash", "git_hash", "hardware", "source_file", "latest",
)  # fmt: skip

#: How the leaderboard colours candidates, from ``config.medmoe.label`` or the plain run's args.
KIND_BY_LABEL_PREFIX = {"full": "full", "awq": "AWQ", "gptq": "GPTQ", "gguf": "GGUF", "moe": "MoE", "ensemble": "MoE"}

_SKIP_NAME = re.compile(r"^(profile_|samples_|routing_)")
_RESULT_NAME = re.compile(r"results_?(.*)\.json$")


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
    medmoe: dict[str, Any] | None
    profile: dict[str, Any] | None
    routing_log: str | None
    lm_eval_version: str | None
    transformers_version: str | None
    git_hash: str | None
    hardware: str | None
    tasks: list[str]
    latest: bool = True


@dataclass
class ResultsSet:
    """Everything read from one results folder."""

    root: str
    frame: pd.DataFrame
    history: pd.DataFrame
    runs: dict[str, RunInfo]
    issues: list[ReadIssue] = field(default_factory=list)

    @property
    def warnings(self) -> list[ReadIssue]:
        return [i for i in self.issues if i.level == "warning"]

    def candidates(self) -> list[str]:
        return sorted(self.frame["candidate"].unique()) if not self.frame.empty else []

    def latest_runs(self, candidate: str) -> list[RunInfo]:
        """The runs that feed ``candidate``'s current rows, newest first."""
        ids = self.frame.loc[self.frame["candidate"] == candidate, "run_id"].unique()
        return sorted((self.runs[i] for i in ids), key=lambda r: r.date, reverse=True)


# ---------------------------------------------------------------------------------------------
# Finding and parsing files


def find_result_files(root: str | Path) -> list[Path]:
    """Every JSON file below ``root`` that may be a results file (profiles and samples excluded)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / n for n in sorted(filenames) if n.endswith(".json") and not _SKIP_NAME.match(n))
    return out


def fingerprint(root: str | Path) -> tuple[str, int, float]:
    """(path, JSON/JSONL file count, newest mtime) of the folder: a cheap cache key for the app.

    Results, profiles and routing logs all count, so a new or rewritten run invalidates the cache.
    """
    count, newest = 0, 0.0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith((".json", ".jsonl")):
                count += 1
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return (str(Path(root).resolve()), count, newest)


def _load_json(path: Path) -> tuple[dict[str, Any] | None, ReadIssue | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, ReadIssue(str(path), f"cannot read ({type(exc).__name__}); skipped")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, ReadIssue(str(path), f"not valid JSON, truncated or corrupt (line {exc.lineno}, column {exc.colno}: {exc.msg}); skipped")
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        return None, ReadIssue(str(path), "not an lm-eval results file (no 'results' mapping); ignored", "info")
    return data, None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    """A float, or NaN for lm-eval's ``"N/A"``, None, lists and other non-numbers."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _run_date(data: Mapping[str, Any], path: Path) -> pd.Timestamp:
    """``date`` (a Unix time in lm-eval 0.4), else the file name's stamp, else the file's mtime."""
    raw = data.get("date")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return pd.Timestamp(float(raw), unit="s", tz="UTC")
    match = _RESULT_NAME.search(path.name)
    if match and match.group(1):
        stamp = match.group(1)
        date, _, clock = stamp.partition("T")
        try:
            return pd.Timestamp(f"{date}T{clock.replace('-', ':', 2)}", tz="UTC")
        except ValueError:
            pass
    return pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")


def _model_ref(config: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The model a plain run evaluated: ``pretrained=``/``model=``/``path=`` or ``model_name``."""
    args = config.get("model_args")
    if isinstance(args, str):
        args = dict(part.split("=", 1) for part in args.split(",") if "=" in part)
    args = _as_dict(args)
    for key in ("pretrained", "model", "path", "model_path", "engine", "base_url"):
        if isinstance(args.get(key), str) and args[key]:
            return args[key]
    return str(data.get("model_name") or config.get("model") or "unknown")


def _short_name(ref: str) -> str:
    """Hub ids stay as they are; local paths shrink to their last component."""
    if ref.startswith(("/", "./", "../", "~")) or (os.sep in ref and Path(ref).exists()):
        return Path(ref.rstrip("/")).name or ref
    return ref


def _plain_label(model_type: str, ref: str) -> str:
    low = f"{model_type} {ref}".lower()
    for tag in ("gptq", "awq"):
        if tag in low:
            return tag
    if "gguf" in low or model_type in ("gguf", "ggml"):
        return "gguf"
    return "full"


def kind_of(label: str, adapter_kind: str | None) -> str:
    """The colour group of a candidate: full, AWQ, GPTQ, GGUF, MoE or other."""
    if adapter_kind == "moe":
        return "MoE"
    prefix = label.split("-")[0].lower() if label else ""
    return KIND_BY_LABEL_PREFIX.get(prefix, "other")


def _hardware_text(profile: Mapping[str, Any] | None, data: Mapping[str, Any]) -> str | None:
    hw = _as_dict(_as_dict(profile).get("hardware"))
    if hw:
        cpu = f"{hw.get('cpu_model') or 'CPU'} x{hw.get('cpu_cores') or '?'}"
        gpu = f"{hw.get('gpu_name')} x{hw.get('gpu_count') or 1}" if hw.get("gpu_name") else None
        return " / ".join(p for p in (cpu, gpu) if p)
    env = data.get("pretty_env_info")
    if not isinstance(env, str):
        return None
    gpu = re.search(r"GPU models and configuration:\s*(.+)", env)
    cpu = re.search(r"Model name:\s*(.+)", env)
    parts = [m.group(1).strip() for m in (cpu, gpu) if m and "Could not collect" not in m.group(1)]
    return " / ".join(parts) or None


def _quantization_text(q: Any) -> str:
    q = _as_dict(q)
    if not q:
        return "none"
    method = str(q.get("method") or "?")
    if q.get("type"):
        return f"{method} {q['type']}"
    bits = f" {q['bits']}-bit" if q.get("bits") else ""
    group = f" g{q['group_size']}" if q.get("group_size") else ""
    return f"{method}{bits}{group}"


def _joined(values: Iterable[str]) -> str:
    return "+".join(dict.fromkeys(v for v in values if v)) or "none"


def _peak_memory(profile: Mapping[str, Any]) -> float:
    """GPU peak (NVML, else torch reserved) when the run used a GPU, else the process's peak RSS."""
    memory = _as_dict(profile.get("memory"))
    gpu = _as_dict(memory.get("gpu"))
    for key in ("nvml_peak_used_bytes", "torch_max_reserved_bytes", "torch_max_allocated_bytes"):
        if _number(gpu.get(key)) > 0:
            return _number(gpu[key])
    return _number(memory.get("peak_rss_bytes"))


def energy_per_correct(profile: Mapping[str, Any] | None, task: str, accuracy: float, n_samples: float) -> float:
    """Joules per correct answer on ``task`` (the profiler's own helper), NaN when unmeasurable.

    The number of correct answers is the task's main accuracy metric times its sample count.
    """
    if not profile or math.isnan(accuracy) or math.isnan(n_samples):
        return math.nan
    from medmoe_lm_eval.profiler import energy_per_correct as per_correct

    value = per_correct(dict(profile), task, accuracy * n_samples)
    return math.nan if value is None else float(value)


# ---------------------------------------------------------------------------------------------
# One file -> rows


@dataclass
class _RunContext:
    """What every row of one file shares."""

    info: RunInfo
    data: dict[str, Any]
    shared: dict[str, Any]
    profile: dict[str, Any] | None
    routing: dict[str, Any]

    @property
    def profile_tasks(self) -> dict[str, Any]:
        return _as_dict(_as_dict(self.profile).get("tasks"))


def _candidate_fields(config: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    medmoe = _as_dict(config.get("medmoe"))
    model_type = str(config.get("model") or "unknown")
    if not medmoe:
        ref = _model_ref(config, data)
        label = _plain_label(model_type, ref)
        return {
            "candidate": _short_name(ref), "label": label, "adapter_kind": None, "kind": kind_of(label, None),
            "backend": model_type, "quantization": "none", "router_type": None,
            "num_parameters": _number(config.get("model_num_parameters")), "adapter_sha256": None,
        }  # fmt: skip
    adapter = _as_dict(medmoe.get("adapter"))
    experts = _as_dict(medmoe.get("experts"))
    router = _as_dict(_as_dict(medmoe.get("routing")).get("router")) or _as_dict(adapter.get("router"))
    params = [_number(_as_dict(e).get("num_parameters")) for e in experts.values()]
    label = str(medmoe.get("label") or ("moe" if medmoe.get("kind") == "moe" else "full"))
    return {
        "candidate": str(medmoe.get("candidate") or adapter.get("name") or _short_name(_model_ref(config, data))),
        "label": label,
        "adapter_kind": medmoe.get("kind") or adapter.get("kind"),
        "kind": kind_of(label, medmoe.get("kind") or adapter.get("kind")),
        "backend": _joined(str(_as_dict(e).get("backend") or "") for e in experts.values()),
        "quantization": _joined(_quantization_text(_as_dict(e).get("quantization")) for e in experts.values()),
        "router_type": router.get("type"),
        "num_parameters": float(np.nansum(params)) if params and not all(math.isnan(p) for p in params) else math.nan,
        "adapter_sha256": adapter.get("sha256"),
    }


def _read_profile(config: Mapping[str, Any], medmoe: Mapping[str, Any], folder: Path, issues: list[ReadIssue], file: str) -> dict[str, Any] | None:
    profile = config.get("medmoe_profile")
    if isinstance(profile, dict) and profile:
        return profile
    name = medmoe.get("profile_file")
    if isinstance(name, str) and name:
        path = folder / Path(name).name
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                return loaded
        except (OSError, ValueError):
            issues.append(ReadIssue(file, f"profile file {path.name} missing or unreadable"))
    return None


def _relative(path: Path, root: Path) -> str:
    """``path`` below ``root`` as a POSIX string (a string cut: ``relpath`` costs ~0.2 ms a file)."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    return (text[len(prefix):] if text.startswith(prefix) else os.path.relpath(text, root)).replace(os.sep, "/")


def _context(path: Path, root: Path, data: dict[str, Any], issues: list[ReadIssue]) -> _RunContext:
    config = _as_dict(data.get("config"))
    medmoe = _as_dict(config.get("medmoe"))
    run_id = _relative(path, root)
    cand = _candidate_fields(config, data)
    profile = _read_profile(config, medmoe, path.parent, issues, run_id) if medmoe else None
    if medmoe and profile is None:
        issues.append(ReadIssue(run_id, "medmoe run without a profile: efficiency columns left empty"))
    elif profile is not None and profile.get("enabled") is False:
        issues.append(ReadIssue(run_id, "profiling was switched off for this run: efficiency columns left empty"))
        profile = None
    routing = _as_dict(medmoe.get("routing"))
    log_name = routing.get("log_file")
    log_path = (path.parent / Path(log_name).name) if isinstance(log_name, str) and log_name else None
    info = RunInfo(
        run_id=run_id, file=str(path), candidate=cand["candidate"], date=_run_date(data, path),
        model_type=str(config.get("model") or "unknown"), model_args=config.get("model_args"),
        medmoe=medmoe or None, profile=profile,
        routing_log=str(log_path) if log_path is not None else None,
        lm_eval_version=data.get("lm_eval_version"), transformers_version=data.get("transformers_version"),
        git_hash=data.get("git_hash"), hardware=_hardware_text(profile, data), tasks=sorted(data["results"]),
    )  # fmt: skip
    shared = dict(cand)
    shared.update(
        run_id=run_id, date=info.date, model_type=info.model_type, profiled=profile is not None,
        peak_memory_bytes=_peak_memory(profile) if profile else math.nan,
        lm_eval_version=info.lm_eval_version, git_hash=info.git_hash, hardware=info.hardware, source_file=info.file,
    )  # fmt: skip
    return _RunContext(info, data, shared, profile, _as_dict(routing.get("per_task")))


def _task_domain(ctx: _RunContext, task: str) -> str | None:
    meta = _as_dict(_as_dict(_as_dict(ctx.data.get("configs")).get(task)).get("metadata"))
    if meta.get("domain"):
        return str(meta["domain"])
    routed = _as_dict(ctx.routing.get(task)).get("domain")
    if routed:
        return str(routed)
    from medmoe_lm_eval.domains import task_domain

    return task_domain(task)


def _task_rows(ctx: _RunContext, task: str, scores: Mapping[str, Any], issues: list[ReadIssue]) -> list[dict[str, Any]]:
    data = ctx.data
    hib = _as_dict(_as_dict(data.get("higher_is_better")).get(task))
    groups = set(_as_dict(data.get("group_subtasks"))) | set(_as_dict(data.get("groups")))
    stats = _as_dict(ctx.profile_tasks.get(task))
    n_samples = _number(_as_dict(_as_dict(data.get("n-samples")).get(task)).get("effective"))
    energy = _number(stats.get("energy_j"))
    metrics: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in scores.items():
        if "," not in key:
            continue
        name, _, filt = key.partition(",")
        is_err = name.endswith("_stderr")
        slot = metrics.setdefault((name.removesuffix("_stderr") if is_err else name, filt), {})
        slot["stderr" if is_err else "value"] = _number(value)
    main = main_metric([m for m, _ in metrics])
    main_value = next((v.get("value", math.nan) for (m, f), v in metrics.items() if m == main and f == "none"), None)
    if main_value is None:
        main_value = next((v.get("value", math.nan) for (m, _), v in metrics.items() if m == main), math.nan)
    latency = _as_dict(stats.get("latency_ms"))
    common = dict(ctx.shared)
    common.update(
        task=task, domain=_task_domain(ctx, task), is_group=task in groups, n_samples=n_samples,
        num_fewshot=_number(_as_dict(data.get("n-shot")).get(task)),
        task_version=str(_as_dict(data.get("versions")).get(task, "")) or None,
        task_hash=_as_dict(data.get("task_hashes")).get(task),
        latency_ms_p50=_number(latency.get("p50")), latency_ms_p95=_number(latency.get("p95")),
        requests_per_s=_number(stats.get("requests_per_s")),
        generated_tokens_per_s=_number(stats.get("generated_tokens_per_s")), energy_j=energy,
        energy_per_correct_j=energy_per_correct(ctx.profile, task, _number(main_value), n_samples),
    )  # fmt: skip
    rows = []
    for (name, filt), slot in metrics.items():
        if "value" not in slot or math.isnan(slot["value"]):
            issues.append(ReadIssue(ctx.info.run_id, f"task {task}: metric {name},{filt} has no numeric value; skipped", "info"))
            continue
        hb = direction(name, hib.get(name))
        if hb is None:
            issues.append(ReadIssue(ctx.info.run_id, f"task {task}: unknown metric '{name}' (no direction): shown, not ranked", "info"))
        rows.append(dict(common, metric=name, filter=filt, value=slot["value"], stderr=slot.get("stderr", math.nan), higher_is_better=hb))
    return rows


def read_run(path: Path, root: Path, issues: list[ReadIssue]) -> tuple[RunInfo | None, list[dict[str, Any]]]:
    """Rows of one results file (empty, with an issue, when it cannot be used)."""
    data, issue = _load_json(path)
    if issue is not None:
        issues.append(issue)
    if data is None:
        return None, []
    try:
        ctx = _context(path, root, data, issues)
        rows = [r for task, scores in sorted(data["results"].items()) if isinstance(scores, dict) for r in _task_rows(ctx, task, scores, issues)]
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as exc:
        issues.append(ReadIssue(_relative(path, root), f"unexpected layout ({type(exc).__name__}: {exc}); skipped"))
        return None, []
    if not rows:
        issues.append(ReadIssue(ctx.info.run_id, "no numeric metrics in this results file; skipped"))
        return None, []
    return ctx.info, rows


# ---------------------------------------------------------------------------------------------
# Folder -> ResultsSet


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FRAME_COLUMNS})


def _disambiguate(frame: pd.DataFrame, runs: dict[str, RunInfo]) -> None:
    """Two different plain models sharing a folder name get their full model reference appended."""
    refs = {rid: _model_ref({"model_args": r.model_args}, {}) for rid, r in runs.items() if r.medmoe is None}
    if not refs:
        return
    ref = frame["run_id"].map(refs)
    distinct = ref.groupby(frame["candidate"]).transform("nunique")
    clash = ref.notna() & (distinct > 1)
    frame.loc[clash, "candidate"] = frame.loc[clash, "candidate"] + " (" + ref[clash] + ")"
    for rid, name in frame.loc[clash, ["run_id", "candidate"]].drop_duplicates("run_id").itertuples(index=False):
        runs[rid].candidate = name


def _mark_latest(history: pd.DataFrame, issues: list[ReadIssue]) -> pd.Series:
    """Newest run per candidate x task wins; one info line per candidate that has older runs."""
    order = history.sort_values(["date", "run_id"], ascending=[False, False], kind="stable")
    newest = order.drop_duplicates(["candidate", "task"], keep="first").set_index(["candidate", "task"])["run_id"]
    keys = pd.MultiIndex.from_frame(history[["candidate", "task"]])
    latest = pd.Series(newest.reindex(keys).to_numpy() == history["run_id"].to_numpy(), index=history.index)
    older = history.loc[~latest, ["candidate", "task", "run_id"]].drop_duplicates()
    for cand, group in older.groupby("candidate", sort=True):
        when = history.loc[latest & (history["candidate"] == cand), "date"].max()
        issues.append(ReadIssue(str(cand), f"{group['run_id'].nunique()} older run(s) on {group['task'].nunique()} task(s) superseded; showing the latest ({when:%Y-%m-%d %H:%M}), older runs stay in history", "info"))
    return latest


def load_results(root: str | Path) -> ResultsSet:
    """Read every lm-eval run below ``root`` into a :class:`ResultsSet` (never raises on content)."""
    root_path = Path(root)
    issues: list[ReadIssue] = []
    if not root_path.is_dir():
        issues.append(ReadIssue(str(root_path), "results folder does not exist; run `medmoe eval ... --output_path` first"))
        return ResultsSet(str(root_path), empty_frame(), empty_frame(), {}, issues)
    runs: dict[str, RunInfo] = {}
    rows: list[dict[str, Any]] = []
    for path in find_result_files(root_path):
        info, file_rows = read_run(path, root_path, issues)
        if info is not None:
            runs[info.run_id] = info
            rows.extend(file_rows)
    if not rows:
        issues.append(ReadIssue(str(root_path), "no lm-eval results found below this folder"))
        return ResultsSet(str(root_path), empty_frame(), empty_frame(), runs, issues)
    history = pd.DataFrame.from_records(rows).reindex(columns=list(FRAME_COLUMNS))
    _disambiguate(history, runs)
    history["latest"] = _mark_latest(history, issues)
    current = set(history.loc[history["latest"], "run_id"])
    for info in runs.values():
        info.latest = info.run_id in current
    frame = history[history["latest"]].reset_index(drop=True)
    return ResultsSet(str(root_path), frame, history, runs, issues)


# ---------------------------------------------------------------------------------------------
# Filters shared by every view


@dataclass(frozen=True)
class Filters:
    """Sidebar choices; an empty tuple means "all"."""

    domain: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    backend: tuple[str, ...] = ()
    quantization: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        for column in ("domain", "task", "backend", "quantization", "kind"):
            chosen = getattr(self, column)
            if chosen:
                mask &= frame[column].fillna("unknown").isin(chosen)
        return frame[mask]


def filter_options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter can take, sorted, ``unknown`` for missing."""
    return {c: sorted(frame[c].fillna("unknown").astype(str).unique()) for c in ("domain", "task", "backend", "quantization", "kind")}


# ---------------------------------------------------------------------------------------------
# Tables the views draw


def overview_table(frame: pd.DataFrame, all_metrics: bool = False) -> pd.DataFrame:
    """Rows for the overview: accuracy-type metrics (or all) with efficiency and provenance."""
    rows = frame if all_metrics else frame[frame["metric"].isin(ACCURACY_METRICS)]
    cols = [
        "candidate", "kind", "domain", "task", "metric", "filter", "value", "stderr", "latency_ms_p50",
        "generated_tokens_per_s", "requests_per_s", "peak_memory_bytes", "energy_j", "energy_per_correct_j",
        "backend", "quantization", "n_samples", "date", "run_id",
    ]  # fmt: skip
    table = rows[cols].sort_values(["task", "metric", "value"], ascending=[True, True, False]).reset_index(drop=True)
    return table.assign(peak_memory_gb=table["peak_memory_bytes"] / 1e9).drop(columns=["peak_memory_bytes"])


def candidate_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: kind, tasks, mean main-metric accuracy and HELM mean win rate."""
    figures = candidate_figures(frame)
    if figures.empty:
        return figures.reset_index()
    figures["win_rate"] = task_win_rates(frame).reindex(figures.index)
    figures["peak_memory_gb"] = figures["peak_memory_bytes"] / 1e9
    cols = ["kind", "tasks", "win_rate", "accuracy", "latency_ms", "generated_tokens_per_s", "peak_memory_gb", "energy_per_correct_j"]
    return figures[cols].reset_index().sort_values(["win_rate", "accuracy"], ascending=False, na_position="last").reset_index(drop=True)


def compare_candidates(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Side by side per task x metric (and efficiency): values of ``a`` and ``b``, delta b - a."""
    keys = ["task", "metric", "filter"]
    left = frame[frame["candidate"] == a].set_index(keys)
    right = frame[frame["candidate"] == b].set_index(keys)
    both = left[["value"]].join(right[["value"]], how="outer", lsuffix="_a", rsuffix="_b")
    both["higher_is_better"] = left["higher_is_better"].combine_first(right["higher_is_better"]).reindex(both.index)
    efficiency = _efficiency_rows(left, right)
    table = pd.concat([both.reset_index(), efficiency], ignore_index=True)
    table["delta"] = table["value_b"] - table["value_a"]
    sign = table["higher_is_better"].map({True: 1.0, False: -1.0})
    better = np.sign(table["delta"] * sign)
    table["better"] = better.map({1.0: b, -1.0: a, 0.0: "tie"}).fillna("")
    return table.rename(columns={"value_a": a if a != b else f"{a} (A)", "value_b": b if a != b else f"{b} (B)"})


def _efficiency_rows(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Per task: latency, tokens/s, peak memory, energy per correct of both candidates."""
    out = []
    for column in ("latency_ms_p50", "generated_tokens_per_s", "peak_memory_bytes", "energy_per_correct_j"):
        a = left.groupby(level="task")[column].first()
        b = right.groupby(level="task")[column].first()
        joined = pd.concat({"value_a": a, "value_b": b}, axis=1).dropna(how="all")
        for task, row in joined.iterrows():
            out.append({"task": task, "metric": column, "filter": "", "value_a": row["value_a"], "value_b": row["value_b"], "higher_is_better": METRIC_DIRECTIONS[column]})
    return pd.DataFrame(out, columns=["task", "metric", "filter", "value_a", "value_b", "higher_is_better"])


# ---------------------------------------------------------------------------------------------
# Routing


def routing_share(results: ResultsSet) -> pd.DataFrame:
    """Long table (candidate, task, domain, expert, share, requests, agreement) from run summaries."""
    out: list[dict[str, Any]] = []
    for info in results.runs.values():
        per_task = _as_dict(_as_dict(_as_dict(info.medmoe).get("routing")).get("per_task"))
        if not info.latest or _as_dict(info.medmoe).get("kind") != "moe":
            continue
        experts = list(_as_dict(_as_dict(info.medmoe).get("experts")))
        for task, summary in per_task.items():
            summary = _as_dict(summary)
            shares = _as_dict(summary.get("share"))
            for expert in dict.fromkeys([*experts, *shares]):  # experts never chosen show as 0
                out.append({"candidate": info.candidate, "task": task, "domain": summary.get("domain"), "expert": expert, "share": _number(shares.get(expert, 0.0)), "requests": _number(summary.get("requests")), "agreement": _number(summary.get("agreement"))})
    return pd.DataFrame(out, columns=["candidate", "task", "domain", "expert", "share", "requests", "agreement"])


def mixture_candidates(results: ResultsSet) -> list[str]:
    return sorted({i.candidate for i in results.runs.values() if i.latest and _as_dict(i.medmoe).get("kind") == "moe"})


LOG_COLUMNS = ("task", "doc_id", "request_type", "experts", "weights", "domain", "routed_domain", "router_ms", "text")


def read_routing_log(path: str | Path, issues: list[ReadIssue] | None = None) -> pd.DataFrame:
    """A routing log as a frame; bad lines are skipped and counted in one issue."""
    issues = issues if issues is not None else []
    rows, bad = [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(row, dict) and isinstance(row.get("experts"), list):
                    rows.append(row)
                else:
                    bad += 1
    except OSError as exc:
        issues.append(ReadIssue(str(path), f"routing log unreadable ({type(exc).__name__})"))
    if bad:
        issues.append(ReadIssue(str(path), f"{bad} malformed routing-log line(s) skipped"))
    frame = pd.DataFrame.from_records(rows).reindex(columns=list(LOG_COLUMNS))
    frame["top_expert"] = frame["experts"].map(lambda e: e[0] if isinstance(e, list) and e else None)
    return frame


def routing_logs(results: ResultsSet, candidate: str) -> tuple[pd.DataFrame, list[ReadIssue]]:
    """All routing-log rows of ``candidate``'s latest runs (one frame, tagged with run_id)."""
    issues: list[ReadIssue] = []
    frames = []
    for info in results.latest_runs(candidate):
        if not info.routing_log:
            continue
        if not Path(info.routing_log).is_file():
            issues.append(ReadIssue(info.run_id, f"routing log {Path(info.routing_log).name} is missing"))
            continue
        frames.append(read_routing_log(info.routing_log, issues).assign(run_id=info.run_id))
    if not frames:
        return pd.DataFrame(columns=[*LOG_COLUMNS, "top_expert", "run_id"]), issues
    return pd.concat(frames, ignore_index=True), issues


def routing_confusion(log: pd.DataFrame) -> pd.DataFrame:
    """Counts of task domain (rows) x routed domain (columns); ``unknown`` where absent."""
    if log.empty:
        return pd.DataFrame()
    return pd.crosstab(log["domain"].fillna("unknown"), log["routed_domain"].fillna("unknown"), rownames=["task domain"], colnames=["routed domain"])


def misrouted(log: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """Decisions whose routed domain differs from the task's domain (both known)."""
    if log.empty:
        return log
    wrong = log[log["domain"].notna() & log["routed_domain"].notna() & (log["domain"] != log["routed_domain"])]
    return wrong[["task", "doc_id", "request_type", "domain", "routed_domain", "top_expert", "text"]].drop_duplicates(["task", "doc_id", "routed_domain"]).head(limit).reset_index(drop=True)


def _expert_signature(info: RunInfo) -> tuple[Any, ...]:
    adapter = _as_dict(_as_dict(info.medmoe).get("adapter"))
    experts = adapter.get("experts") if isinstance(adapter.get("experts"), list) else []
    names = tuple(sorted((str(_as_dict(e).get("name")), str(_as_dict(e).get("model"))) for e in experts))
    shared = _as_dict(adapter.get("shared_expert")).get("name")
    return names or tuple(sorted(_as_dict(_as_dict(info.medmoe).get("experts")))), shared


def routing_regret(results: ResultsSet) -> pd.DataFrame:
    """Accuracy lost by each routed mixture against the oracle mixture over the same experts.

    Pairs are latest ``moe`` runs with identical experts, one with router type ``oracle``;
    ``regret = oracle - router`` on each shared task's main metric (positive = the router cost
    accuracy).
    """
    cols = ["candidate", "router_type", "oracle", "task", "metric", "router_value", "oracle_value", "regret"]
    moe = [i for i in results.runs.values() if i.latest and _as_dict(i.medmoe).get("kind") == "moe"]
    signature = {i.run_id: _expert_signature(i) for i in moe}
    oracles = [i for i in moe if _router_type(i) == "oracle"]
    pairs = pd.DataFrame(
        [(o.candidate, _router_type(o), oracle.candidate) for oracle in oracles for o in moe if _router_type(o) != "oracle" and signature[o.run_id] == signature[oracle.run_id]],
        columns=["candidate", "router_type", "oracle"],
    ).drop_duplicates()
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    best = main_metric_rows(results.frame)[["candidate", "task", "metric", "value"]]
    routed = pairs.merge(best.rename(columns={"value": "router_value"}), on="candidate")
    both = routed.merge(best.rename(columns={"candidate": "oracle", "value": "oracle_value"}), on=["oracle", "task", "metric"])
    both["regret"] = both["oracle_value"] - both["router_value"]
    return both[cols].sort_values(["candidate", "oracle", "task"]).reset_index(drop=True)


def _router_type(info: RunInfo) -> str | None:
    medmoe = _as_dict(info.medmoe)
    router = _as_dict(_as_dict(medmoe.get("routing")).get("router")) or _as_dict(_as_dict(medmoe.get("adapter")).get("router"))
    return router.get("type")


def run_details(results: ResultsSet, candidate: str) -> list[dict[str, Any]]:
    """Config and profile of a candidate's latest runs, for the detail view (plain data)."""
    out = []
    for info in results.latest_runs(candidate):
        out.append({
            "run_id": info.run_id, "date": str(info.date), "model_type": info.model_type,
            "lm_eval_version": info.lm_eval_version, "git_hash": info.git_hash, "hardware": info.hardware,
            "model_args": info.model_args, "adapter": _as_dict(info.medmoe).get("adapter"),
            "experts": _as_dict(info.medmoe).get("experts"), "profile": info.profile,
        })  # fmt: skip
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

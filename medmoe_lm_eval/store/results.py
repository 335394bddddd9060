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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmoe_lm_eval.benchmarks.metric_directions import direction, main_metric
from medmoe_lm_eval.profiling.figures import task_figures
from medmoe_lm_eval.store.files import _load_json, _run_date, as_dict, find_result_files, number
from medmoe_lm_eval.store.records import FRAME_COLUMNS, KIND_BY_LABEL_PREFIX, ReadIssue, ResultsSet, RunInfo

# ---------------------------------------------------------------------------------------------
# Finding and parsing files


def _model_ref(config: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The model a plain run evaluated: ``pretrained=``/``model=``/``path=`` or ``model_name``."""
    args = config.get("model_args")
    if isinstance(args, str):
        args = dict(part.split("=", 1) for part in args.split(",") if "=" in part)
    args = as_dict(args)
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
    hw = as_dict(as_dict(profile).get("hardware"))
    if hw:
        cpu = f"{hw.get('cpu_model') or 'CPU'} x{hw.get('cpu_cores') or '?'}"
        gpu = f"{hw.get('gpu_name')} x{hw.get('gpu_count') or 1}" if hw.get("gpu_name") else None
        return " / ".join(p for p in (cpu, gpu) if p)
    env = data.get("pretty_env_info")
    if not isinstance(env, str):
        return None
    found = (re.search(r"Model name:\s*(.+)", env), re.search(r"GPU models and configuration:\s*(.+)", env))
    parts = [m.group(1).strip() for m in found if m and "Could not collect" not in m.group(1)]
    return " / ".join(parts) or None


def _quantization_text(q: Any) -> str:
    q = as_dict(q)
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
    memory = as_dict(profile.get("memory"))
    gpu = as_dict(memory.get("gpu"))
    for key in ("nvml_peak_used_bytes", "torch_max_reserved_bytes", "torch_max_allocated_bytes"):
        if number(gpu.get(key)) > 0:
            return number(gpu[key])
    return number(memory.get("peak_rss_bytes"))


def energy_per_correct(profile: Mapping[str, Any] | None, task: str, accuracy: float, n_samples: float) -> float:
    """Joules per correct answer on ``task`` (the profiler's own helper), NaN when unmeasurable.

    The number of correct answers is the task's main accuracy metric times the documents served
    in this run (all of them unless ``--use_cache`` answered some from its cache).
    """
    if not profile or math.isnan(accuracy) or math.isnan(n_samples):
        return math.nan
    from medmoe_lm_eval.profiling.served import energy_per_correct as per_correct

    value = per_correct(dict(profile), task, accuracy, n_samples)
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
        return as_dict(as_dict(self.profile).get("tasks"))


def _candidate_fields(config: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    medmoe = as_dict(config.get("medmoe"))
    model_type = str(config.get("model") or "unknown")
    if not medmoe:
        ref = _model_ref(config, data)
        label = _plain_label(model_type, ref)
        return {
            "candidate": _short_name(ref), "label": label, "adapter_kind": None, "kind": kind_of(label, None),
            "backend": model_type, "quantization": "none", "router_type": None,
            "num_parameters": number(config.get("model_num_parameters")), "adapter_sha256": None,
        }  # fmt: skip
    adapter = as_dict(medmoe.get("adapter"))
    experts = as_dict(medmoe.get("experts"))
    router = as_dict(as_dict(medmoe.get("routing")).get("router")) or as_dict(adapter.get("router"))
    params = [number(as_dict(e).get("num_parameters")) for e in experts.values()]
    label = str(medmoe.get("label") or ("moe" if medmoe.get("kind") == "moe" else "full"))
    return {
        "candidate": str(medmoe.get("candidate") or adapter.get("name") or _short_name(_model_ref(config, data))),
        "label": label,
        "adapter_kind": medmoe.get("kind") or adapter.get("kind"),
        "kind": kind_of(label, medmoe.get("kind") or adapter.get("kind")),
        "backend": _joined(str(as_dict(e).get("backend") or "") for e in experts.values()),
        "quantization": _joined(_quantization_text(as_dict(e).get("quantization")) for e in experts.values()),
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
    return (text[len(prefix) :] if text.startswith(prefix) else os.path.relpath(text, root)).replace(os.sep, "/")


def _context(path: Path, root: Path, data: dict[str, Any], issues: list[ReadIssue]) -> _RunContext:
    config = as_dict(data.get("config"))
    medmoe = as_dict(config.get("medmoe"))
    run_id = _relative(path, root)
    cand = _candidate_fields(config, data)
    profile = _read_profile(config, medmoe, path.parent, issues, run_id) if medmoe else None
    if medmoe and profile is None:
        issues.append(ReadIssue(run_id, "medmoe run without a profile: efficiency columns left empty"))
    elif profile is not None and profile.get("enabled") is False:
        issues.append(ReadIssue(run_id, "profiling was switched off for this run: efficiency columns left empty"))
        profile = None
    routing = as_dict(medmoe.get("routing"))
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
    return _RunContext(info, data, shared, profile, as_dict(routing.get("per_task")))


def _task_domain(ctx: _RunContext, task: str) -> str | None:
    meta = as_dict(as_dict(as_dict(ctx.data.get("configs")).get(task)).get("metadata"))
    if meta.get("domain"):
        return str(meta["domain"])
    routed = as_dict(ctx.routing.get(task)).get("domain")
    if routed:
        return str(routed)
    from medmoe_lm_eval.benchmarks.domains import task_domain

    return task_domain(task)


def _task_rows(ctx: _RunContext, task: str, scores: Mapping[str, Any], issues: list[ReadIssue]) -> list[dict[str, Any]]:
    data = ctx.data
    hib = as_dict(as_dict(data.get("higher_is_better")).get(task))
    groups = set(as_dict(data.get("group_subtasks"))) | set(as_dict(data.get("groups")))
    n_samples = number(as_dict(as_dict(data.get("n-samples")).get(task)).get("effective"))
    metrics: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in scores.items():
        if "," not in key:
            continue
        name, _, filt = key.partition(",")
        is_err = name.endswith("_stderr")
        slot = metrics.setdefault((name.removesuffix("_stderr") if is_err else name, filt), {})
        slot["stderr" if is_err else "value"] = number(value)
    main = main_metric([m for m, _ in metrics])
    main_value = next((v.get("value", math.nan) for (m, f), v in metrics.items() if m == main and f == "none"), None)
    if main_value is None:
        main_value = next((v.get("value", math.nan) for (m, _), v in metrics.items() if m == main), math.nan)
    common = dict(ctx.shared)
    common.update(
        task=task, domain=_task_domain(ctx, task), is_group=task in groups, n_samples=n_samples,
        num_fewshot=number(as_dict(data.get("n-shot")).get(task)),
        task_version=str(as_dict(data.get("versions")).get(task, "")) or None,
        task_hash=as_dict(data.get("task_hashes")).get(task),
        energy_per_correct_j=energy_per_correct(ctx.profile, task, number(main_value), n_samples),
    )  # fmt: skip
    common.update(task_figures(ctx.profile, task, n_samples))  # efficiency figures: see profiling.figures
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
        issues.append(
            ReadIssue(
                str(cand),
                f"{group['run_id'].nunique()} older run(s) on {group['task'].nunique()} task(s) superseded; showing the latest ({when:%Y-%m-%d %H:%M}), older runs stay in history",
                "info",
            )
        )
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


# ---------------------------------------------------------------------------------------------
# Tables the views draw


# ---------------------------------------------------------------------------------------------
# Routing

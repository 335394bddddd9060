"""Reading lm-eval runs into one tidy frame.

lm-eval writes ``<output_path>/<model>/results_<date>.json``. A ``medmoe`` run adds the run
record (``config.medmoe``: candidate, kind, adapter, experts, routing summary) and the profile
(``config.medmoe_profile``: latency, throughput, memory, energy), with a routing log beside it;
their layout and versions are :mod:`medmoe_lm_eval.schema`'s, read here through it. Plain runs of
other model types have neither and are shown without efficiency figures.

The frame has one row per candidate x task x metric (see :data:`FRAME_COLUMNS`). Reading never
raises on bad input: each unreadable or odd file becomes a :class:`ReadIssue` the views show, so a
truncated JSON, a run without a profile, or an unknown metric costs a warning, not the board.
Re-runs of one candidate and task keep the newest in ``frame``; ``history`` keeps them all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmoe_lm_eval.benchmarks.metric_directions import METRIC_BOUNDS, direction, main_metric, within_bounds
from medmoe_lm_eval.jsonio import UnsafeEntry, entry_problem
from medmoe_lm_eval.profiling.task_efficiency import task_efficiency
from medmoe_lm_eval.schema.profile import KIND as PROFILE_KIND
from medmoe_lm_eval.schema.profile import profile_problem
from medmoe_lm_eval.schema.run_record import PROFILE_SECTION, RunRecord, TaskRouting, run_section
from medmoe_lm_eval.schema.versions import VERSION_KEY
from medmoe_lm_eval.store.candidates import hardware_text, joined, kind_of, model_ref, peak_memory, plain_label, quantization_text, short_name
from medmoe_lm_eval.store.files import find_result_files, load_json, read_data_file, run_date
from medmoe_lm_eval.store.latest import standing
from medmoe_lm_eval.store.records import FRAME_COLUMNS, ReadIssue, ResultsSet, RunInfo
from medmoe_lm_eval.store.run_key import RunKey, run_key
from medmoe_lm_eval.store.samples import RUN_PROPERTY_METRICS, ClusterSpec, samples_path
from medmoe_lm_eval.store.values import as_dict, number


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


def energy_per_request(profile: Mapping[str, Any] | None, task: str, n_samples: float) -> float:
    """Joules per request (per document this run served) on ``task``, NaN when unmeasured: what a
    use case weighs beside accuracy (J per correct answer would count accuracy twice). Read field
    by field: a profile from elsewhere may hold anything there."""
    entry = as_dict(as_dict(as_dict(profile).get("tasks")).get(task))
    joules = number(entry.get("energy_j"))
    served = number(entry.get("docs")) if as_dict(profile).get("served") is not None else math.nan
    docs = served if math.isfinite(served) and served > 0 else number(n_samples)
    return joules / docs if math.isfinite(joules) and math.isfinite(docs) and docs > 0 else math.nan


# ---------------------------------------------------------------------------------------------
# One file -> rows


@dataclass
class _RunContext:
    """What every row of one file shares."""

    info: RunInfo
    data: dict[str, Any]
    shared: dict[str, Any]
    profile: dict[str, Any] | None
    routing: dict[str, TaskRouting]
    adapter_id: str
    keys: dict[str, RunKey]
    root: Path
    issues: list[ReadIssue]

    @property
    def profile_tasks(self) -> dict[str, Any]:
        return as_dict(as_dict(self.profile).get("tasks"))


def _candidate_fields(config: Mapping[str, Any], data: Mapping[str, Any], record: RunRecord | None) -> dict[str, Any]:
    model_type = str(config.get("model") or "unknown")
    if record is None:
        ref = model_ref(config, data)
        label = plain_label(model_type, ref)
        return {
            "candidate": short_name(ref), "label": label, "adapter_kind": None, "kind": kind_of(label, None),
            "backend": model_type, "quantization": "none", "router_type": None,
            "num_parameters": number(config.get("model_num_parameters")), "adapter_sha256": None,
        }  # fmt: skip
    adapter, experts = record.adapter, record.experts
    router = as_dict(record.routing.router) or as_dict(adapter.get("router"))
    params = [number(e.get("num_parameters")) for e in experts.values()]
    label = record.label or ("moe" if record.kind == "moe" else "full")
    return {
        "candidate": str(record.candidate or adapter.get("name") or short_name(model_ref(config, data))),
        "label": label,
        "adapter_kind": record.kind or adapter.get("kind"),
        "kind": kind_of(label, record.kind or adapter.get("kind")),
        "backend": joined(str(e.get("backend") or "") for e in experts.values()),
        "quantization": joined(quantization_text(e.get("quantization")) for e in experts.values()),
        "router_type": router.get("type"),
        "num_parameters": float(np.nansum(params)) if params and not all(math.isnan(p) for p in params) else math.nan,
        "adapter_sha256": adapter.get("sha256"),
    }


def _checked_profile(profile: dict[str, Any], issues: list[ReadIssue], file: str) -> dict[str, Any] | None:
    """``profile`` when this code reads its version, else ``None`` and one issue."""
    problem = profile_problem(profile)
    if problem is not None:
        issues.append(ReadIssue(file, problem))
        return None
    return profile


def _read_profile(config: Mapping[str, Any], record: RunRecord, folder: Path, root: Path, issues: list[ReadIssue], file: str) -> dict[str, Any] | None:
    profile = config.get(PROFILE_SECTION)
    if isinstance(profile, dict) and profile:
        return _checked_profile(profile, issues, file)
    name = record.profile_file
    if name:
        path = folder / Path(name).name
        try:
            loaded = read_data_file(path, root)
            if isinstance(loaded, dict):
                return _checked_profile(loaded, issues, f"{file} (profile {path.name})")
        except UnsafeEntry as exc:
            issues.append(ReadIssue(file, f"profile file {path.name} skipped: {exc}"))
        except (OSError, ValueError):
            issues.append(ReadIssue(file, f"profile file {path.name} missing or unreadable"))
    return None


def _unsafe(root: Path, path: Path, what: str, run_id: str, issues: list[ReadIssue]) -> bool:
    """Whether ``path`` (a log beside a run) is there but must not be read: a link out of the
    folder, a device, a pipe or a dangling link is one warning and is never opened."""
    problem = entry_problem(path, root)
    if problem in (None, "missing"):
        return False
    issues.append(ReadIssue(run_id, f"{what} {path.name} skipped: {problem}"))
    return True


def _relative(path: Path, root: Path) -> str:
    """``path`` below ``root`` as a POSIX string (a string cut: ``relpath`` costs ~0.2 ms a file)."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    return (text[len(prefix) :] if text.startswith(prefix) else os.path.relpath(text, root)).replace(os.sep, "/")


def _context(path: Path, root: Path, data: dict[str, Any], medmoe: dict[str, Any] | None, issues: list[ReadIssue]) -> _RunContext:
    config = as_dict(data.get("config"))
    record = RunRecord.read(medmoe) if medmoe else None
    run_id = _relative(path, root)
    cand = _candidate_fields(config, data, record)
    profile = _read_profile(config, record, path.parent, root, issues, run_id) if record else None
    if record and profile is None and not (issues and issues[-1].message.startswith(f"{PROFILE_KIND} {VERSION_KEY}")):  # a version note says it all
        issues.append(ReadIssue(run_id, "medmoe run without a profile: efficiency columns left empty"))
    elif profile is not None and profile.get("enabled") is False:
        issues.append(ReadIssue(run_id, "profiling was switched off for this run: efficiency columns left empty"))
        profile = None
    log_name = record.routing.log_file if record else None
    log_path = (path.parent / Path(log_name).name) if log_name else None
    if log_path is not None and _unsafe(root, log_path, "routing log", run_id, issues):
        log_path = None
    info = RunInfo(
        run_id=run_id, file=str(path), candidate=cand["candidate"], date=run_date(data, path),
        model_type=str(config.get("model") or "unknown"), model_args=config.get("model_args"),
        medmoe=medmoe or None, record=record, profile=profile,
        routing_log=str(log_path) if log_path is not None else None,
        lm_eval_version=data.get("lm_eval_version"), transformers_version=data.get("transformers_version"),
        git_hash=data.get("git_hash"), hardware=hardware_text(profile, data), tasks=sorted(data["results"]),
        clusters=ClusterSpec.per_task(as_dict(data.get("configs"))),
    )  # fmt: skip
    shared = dict(cand)
    shared.update(
        run_id=run_id, date=info.date, model_type=info.model_type, profiled=profile is not None,
        peak_memory_bytes=peak_memory(profile) if profile else math.nan,
        lm_eval_version=info.lm_eval_version, git_hash=info.git_hash, hardware=info.hardware, source_file=info.file,
    )  # fmt: skip
    adapter_id = str(cand["adapter_sha256"] or f"model:{model_ref(config, data)}")
    return _RunContext(info, data, shared, profile, record.routing.per_task if record else {}, adapter_id, {}, root, issues)


def _task_domain(ctx: _RunContext, task: str) -> str | None:
    meta = as_dict(as_dict(as_dict(ctx.data.get("configs")).get(task)).get("metadata"))
    if meta.get("domain"):
        return str(meta["domain"])
    routed = ctx.routing.get(task)
    if routed is not None and routed.domain:
        return routed.domain
    from medmoe_lm_eval.benchmarks.domains import task_domain

    return task_domain(task)


def _sandbox(metrics: Mapping[tuple[str, str], dict[str, float]]) -> str | None:
    """The MBPP sandbox mechanism from ``sandbox_isolated`` (1 = every program under kernel isolation)."""
    value = next((v.get("value") for (m, _), v in metrics.items() if m == "sandbox_isolated"), None)
    if value is None or math.isnan(value):
        return None
    return "namespaces" if value >= 1.0 else "rlimits+audit" if value <= 0.0 else f"namespaces for {value:.0%}"


def _n_choices(task_config: Mapping[str, Any]) -> float:
    """Options per question of a multiple-choice task with a fixed choice list (NaN otherwise;
    the per-sample log gives the count per document)."""
    if task_config.get("output_type") != "multiple_choice":
        return math.nan
    choices = task_config.get("doc_to_choice")
    return float(len(choices)) if isinstance(choices, list) and choices else math.nan


def _key_columns(ctx: _RunContext, task: str) -> dict[str, Any]:
    key = run_key(ctx.data, task, ctx.adapter_id)
    digest = key.digest()
    ctx.keys[digest] = key
    sample_file = samples_path(ctx.info.file, task)
    return {
        "data_source": key.source_kind, "data_origin": key.source_origin, "limit": key.limit if key.limit is not None else math.nan,
        "rows_fingerprint": key.rows_fingerprint, "run_key": digest, "task_settings": key.settings(), "variant": "",
        "samples_file": sample_file if not _unsafe(ctx.root, Path(sample_file), "per-sample log", ctx.info.run_id, ctx.issues) and os.path.isfile(sample_file) else None,
        "n_choices": _n_choices(as_dict(as_dict(ctx.data.get("configs")).get(task))),
    }  # fmt: skip


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
    _drop_impossible(metrics, task, ctx.info.run_id, issues)
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
        energy_per_request_j=energy_per_request(ctx.profile, task, n_samples),
        sandbox=_sandbox(metrics), **_key_columns(ctx, task),
    )  # fmt: skip
    common.update(task_efficiency(ctx.profile, task, n_samples))  # efficiency figures: see profiling.task_efficiency
    rows = []
    for (name, filt), slot in metrics.items():
        if name in RUN_PROPERTY_METRICS:
            continue
        if "value" not in slot or math.isnan(slot["value"]):
            issues.append(ReadIssue(ctx.info.run_id, f"task {task}: metric {name},{filt} has no numeric value; skipped", "info"))
            continue
        hb = direction(name, hib.get(name))
        if hb is None:
            issues.append(ReadIssue(ctx.info.run_id, f"task {task}: unknown metric '{name}' (no direction): shown, not ranked", "info"))
        rows.append(dict(common, metric=name, filter=filt, value=slot["value"], stderr=slot.get("stderr", math.nan), higher_is_better=hb))
    return rows


def _drop_impossible(metrics: dict[tuple[str, str], dict[str, float]], task: str, run_id: str, issues: list[ReadIssue]) -> None:
    """A value its metric cannot take goes, with a warning; a negative standard error becomes NaN."""
    for (name, filt), slot in list(metrics.items()):
        value = slot.get("value", math.nan)
        if not math.isnan(value) and not within_bounds(name, value):
            low, high = METRIC_BOUNDS[name]
            issues.append(ReadIssue(run_id, f"task {task}: {name},{filt} = {value:.6g} is outside [{low:g}, {high:g}], so it is not that metric; skipped"))
            del metrics[(name, filt)]
        elif slot.get("stderr", 0.0) < 0:
            issues.append(ReadIssue(run_id, f"task {task}: {name}_stderr,{filt} = {slot['stderr']:.6g} is negative; not used", "info"))
            slot["stderr"] = math.nan


def read_run(path: Path, root: Path, issues: list[ReadIssue], keys: dict[str, RunKey] | None = None) -> tuple[RunInfo | None, list[dict[str, Any]]]:
    """Rows of one results file (empty, with an issue, when it cannot be used); its run keys go to ``keys``."""
    data, issue = load_json(path, root)
    if issue is not None:
        issues.append(issue)
    if data is None:
        return None, []
    medmoe, problem = run_section(as_dict(data.get("config")))
    if problem is not None:
        issues.append(ReadIssue(_relative(path, root), problem))
        return None, []
    try:
        ctx = _context(path, root, data, medmoe, issues)
        rows = [r for task, scores in sorted(data["results"].items()) if isinstance(scores, dict) for r in _task_rows(ctx, task, scores, issues)]
        if keys is not None:
            keys.update(ctx.keys)
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
    refs = {rid: model_ref({"model_args": r.model_args}, {}) for rid, r in runs.items() if r.medmoe is None}
    if not refs:
        return
    ref = frame["run_id"].map(refs)
    distinct = ref.groupby(frame["candidate"]).transform("nunique")
    clash = ref.notna() & (distinct > 1)
    frame.loc[clash, "candidate"] = frame.loc[clash, "candidate"] + " (" + ref[clash] + ")"
    for rid, name in frame.loc[clash, ["run_id", "candidate"]].drop_duplicates("run_id").itertuples(index=False):
        runs[rid].candidate = name


def load_results(root: str | Path) -> ResultsSet:
    """Read every lm-eval run below ``root`` into a :class:`ResultsSet` (never raises on content)."""
    root_path = Path(root)
    issues: list[ReadIssue] = []
    if not root_path.is_dir():
        issues.append(ReadIssue(str(root_path), "results folder does not exist; run `medmoe eval ... --output_path` first"))
        return ResultsSet(str(root_path), empty_frame(), empty_frame(), {}, issues)
    runs: dict[str, RunInfo] = {}
    rows: list[dict[str, Any]] = []
    keys: dict[str, RunKey] = {}
    for path in find_result_files(root_path):
        info, file_rows = read_run(path, root_path, issues, keys)
        if info is not None:
            runs[info.run_id] = info
            rows.extend(file_rows)
    if not rows:
        issues.append(ReadIssue(str(root_path), "no lm-eval results found below this folder"))
        return ResultsSet(str(root_path), empty_frame(), empty_frame(), runs, issues, empty_frame(), keys)
    history = pd.DataFrame.from_records(rows).reindex(columns=list(FRAME_COLUMNS))
    _disambiguate(history, runs)
    marks = standing(history, keys, issues)
    history["latest"], history["variant"] = marks.latest, marks.variant
    current = set(history.loc[history["latest"], "run_id"])
    for info in runs.values():
        info.latest = info.run_id in current
    frame = history[history["latest"]].reset_index(drop=True)
    apart = history[marks.newest_in_key & ~marks.latest].reset_index(drop=True)
    _warn_mixed_sources(frame, issues)
    return ResultsSet(str(root_path), frame, history, runs, issues, apart, keys)


def _warn_mixed_sources(frame: pd.DataFrame, issues: list[ReadIssue]) -> None:
    """One warning when the board mixes sample runs (bundled, synthetic) with runs on full data."""
    sample = frame["data_source"].isin(["bundled", "synthetic"])
    full = frame["data_source"].isin(["hub", "dir"])
    if sample.any() and full.any():
        n_sample, n_full = frame.loc[sample, "candidate"].nunique(), frame.loc[full, "candidate"].nunique()
        issues.append(
            ReadIssue(
                "data sources",
                f"this board mixes runs on bundled or synthetic samples ({n_sample} candidate(s)) with runs on full data ({n_full}); "
                "their figures are not comparable, see each row's data-source badge",
            )
        )

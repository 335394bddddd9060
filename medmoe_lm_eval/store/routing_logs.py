"""Routing logs (``routing_*.jsonl`` beside a run) read into frames, bad lines counted, not fatal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medmoe_lm_eval.jsonio import loads_data
from medmoe_lm_eval.store.files import read_jsonl, text
from medmoe_lm_eval.store.records import ReadIssue, ResultsSet

LOG_COLUMNS = ("task", "doc_id", "request_type", "experts", "weights", "domain", "routed_domain", "router_ms", "text")
_TEXT_FIELDS = ("task", "request_type", "domain", "routed_domain", "text")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clean(row: object) -> dict[str, object] | None:
    """A log line with each field of the type medmoe writes, or ``None`` when its experts are not
    a list of names. A log may come from elsewhere: a field of another type (a list where a domain
    goes) reads as missing, since the scorecard groups and pairs on these fields."""
    if not isinstance(row, dict):
        return None
    experts = row.get("experts")
    if not isinstance(experts, list) or not all(isinstance(e, str) for e in experts):
        return None
    weights = row.get("weights")
    doc_id = row.get("doc_id")
    return {
        **{f: text(row.get(f)) for f in _TEXT_FIELDS},
        "doc_id": doc_id if isinstance(doc_id, int) and not isinstance(doc_id, bool) else None,
        "experts": experts,
        "weights": weights if isinstance(weights, list) and all(_is_number(w) for w in weights) else None,
        "router_ms": row["router_ms"] if _is_number(row.get("router_ms")) else None,
    }


def read_routing_log(path: str | Path, issues: list[ReadIssue] | None = None) -> pd.DataFrame:
    """A routing log as a frame; bad lines are skipped and counted in one issue."""
    issues = issues if issues is not None else []
    rows = read_jsonl(path, lambda line: _clean(loads_data(line)), "routing log", "routing-log", issues)
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

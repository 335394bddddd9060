"""Routing logs (``routing_*.jsonl`` beside a run) read into frames, bad lines counted, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medmoe_lm_eval.store.records import ReadIssue, ResultsSet

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

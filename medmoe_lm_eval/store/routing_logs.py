"""Routing logs (``routing_*.jsonl`` beside a run) read into frames, bad lines counted, not fatal.

Each line is read through :func:`medmoe_lm_eval.schema.routing_row.read_row`; lines in a layout
this code does not read (a newer ``schema_version``) are counted in one note naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medmoe_lm_eval.jsonio import loads_data
from medmoe_lm_eval.schema.routing_row import COLUMNS, UnknownRowVersion, read_row
from medmoe_lm_eval.store.files import read_jsonl
from medmoe_lm_eval.store.records import ReadIssue, ResultsSet

LOG_COLUMNS = COLUMNS


def read_routing_log(path: str | Path, issues: list[ReadIssue] | None = None) -> pd.DataFrame:
    """A routing log as a frame; bad lines are skipped and counted in one issue, lines of an
    unknown version in another."""
    issues = issues if issues is not None else []
    unknown: list[str] = []

    def parse(line: str) -> dict[str, Any] | None:
        try:
            return read_row(loads_data(line))
        except UnknownRowVersion as exc:
            unknown.append(str(exc))
            return {}

    rows = [r for r in read_jsonl(path, parse, "routing log", "routing-log", issues) if r]
    if unknown:
        issues.append(ReadIssue(str(path), f"{len(unknown)} line(s): {unknown[0]}"))
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

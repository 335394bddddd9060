"""What the results store reads from a folder, as plain JSON: the frame, the runs, the notes, the
routing logs. ``tests/support/data/previous_layout/expected.json`` is this snapshot taken by the store as
it was before ``medmoe_lm_eval.schema`` existed; ``test_schema`` compares today's store with it.

Only store functions that both versions have are used, and paths are written relative to the
folder, so the snapshot does not depend on where the folder lies.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

#: the routing-log columns the store had before it read ``fallback``
OLD_LOG_COLUMNS = ("task", "doc_id", "request_type", "experts", "weights", "domain", "routed_domain", "router_ms", "text", "top_expert", "run_id")


def _plain(value: Any, root: str) -> Any:
    """``value`` as JSON data: NaN as None, timestamps as ISO text, the folder's path as ``<root>``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, root) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str):
        return value.replace(root, "<root>")
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item(), root)
    return value


def _digest(value: Any) -> str:
    """A short fingerprint of a whole section (the run record, the profile) as the store hands it up."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def snapshot(root: Path) -> dict[str, Any]:
    from medmoe_lm_eval.store.results import load_results
    from medmoe_lm_eval.store.routing_logs import routing_logs

    res = load_results(root)
    where = str(root)
    frame = res.history.sort_values(["run_id", "task", "metric", "filter"]).to_dict(orient="records")
    runs = {
        rid: {
            "candidate": info.candidate, "date": info.date, "model_type": info.model_type, "medmoe": _digest(info.medmoe),
            "profile": _digest(info.profile), "routing_log": info.routing_log, "tasks": info.tasks, "latest": info.latest,
            "hardware": info.hardware, "lm_eval_version": info.lm_eval_version,
        }
        for rid, info in sorted(res.runs.items())
    }  # fmt: skip
    logs = {}
    for cand in res.candidates():
        log, issues = routing_logs(res, cand)
        if not log.empty:
            logs[cand] = {"rows": log.reindex(columns=list(OLD_LOG_COLUMNS)).to_dict(orient="records"), "issues": [str(i) for i in issues]}
    data = {"frame": frame, "runs": runs, "issues": [str(i) for i in res.issues], "logs": logs, "apart": len(res.apart)}
    return json.loads(json.dumps(_plain(data, where), default=str))

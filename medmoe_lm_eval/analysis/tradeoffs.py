"""Trade-off points: one task's quality per candidate, with its 95% interval, against a cost.

A point's height is the task's own main metric (chance-corrected for multiple choice), never a
mean over different metrics; its error bar is the 95% bootstrap interval of the mean over the
task's items (``scipy.stats.bootstrap``, percentile), or +-1.96 lm-eval standard errors for a run
without a per-sample log. Single-stream latency gets a horizontal one: the 95% interval of its p50
over the serving probe's measurements (:mod:`.latency`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from medmoe_lm_eval.analysis.latency import median_interval
from medmoe_lm_eval.analysis.paired import CONFIDENCE, N_RESAMPLES, SEED
from medmoe_lm_eval.analysis.quality import main_metric_rows, task_matrices

Z_95 = 1.959963984540054
POINT_COLUMNS = [
    "candidate", "kind", "metric", "quality", "ci_low", "ci_high", "n_items", "latency_ms", "latency_ms_low", "latency_ms_high",
    "peak_memory_gb", "energy_per_correct_j", "data",
]  # fmt: skip


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of a mean (the value itself when every item is equal)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def task_points(frame: pd.DataFrame, items: pd.DataFrame, task: str) -> pd.DataFrame:
    """Per candidate that ran ``task``: quality with its interval, and the costs drawn against it."""
    best = main_metric_rows(frame[frame["task"] == task])
    if best.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    own: dict[str, np.ndarray] = {}
    for cand in best["candidate"]:
        found = task_matrices(items[items["candidate"] == cand], best[best["candidate"] == cand]).get(task) if not items.empty else None
        if found is not None:
            own[cand] = found.scores[cand].to_numpy(dtype=float)
    rows = []
    for r in best.to_dict("records"):
        name = r["candidate"]
        if name in own:
            q = float(own[name].mean())
            low, high = mean_interval(own[name])
            n = len(own[name])
        else:
            q, se = float(r["quality"]), float(r["quality_stderr"])
            low, high = (q - Z_95 * se, q + Z_95 * se) if math.isfinite(se) else (math.nan, math.nan)
            n = 0
        lat_low, lat_high = median_interval(r.get("latency_samples_ms"))
        rows.append({"candidate": name, "kind": r["kind"], "metric": r["metric"], "quality": q, "ci_low": low, "ci_high": high, "n_items": n,
                     "latency_ms": r["latency_ms_p50"], "latency_ms_low": lat_low, "latency_ms_high": lat_high,
                     "peak_memory_gb": r["peak_memory_bytes"] / 1e9, "energy_per_correct_j": r["energy_per_correct_j"],
                     "data": r["data_source"]})  # fmt: skip
    return pd.DataFrame(rows, columns=POINT_COLUMNS)

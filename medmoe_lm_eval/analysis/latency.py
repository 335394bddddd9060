"""How sure is a candidate's single-stream latency? An exact interval for the probe's median.

A task's latency figure is the p50 of a handful of end-to-end times (the serving probe sends
``probe`` prompts after a warm-up). For ``n`` independent measurements of a continuous time, the
number below the true median is Binomial(n, 1/2), so ``[X(j), X(n+1-j)]`` (order statistics)
covers the true median with probability ``1 - 2 P(Bin(n, 1/2) < j)`` exactly, whatever the
distribution: the largest ``j`` with coverage >= 95% gives the interval (:func:`order_interval`).
Six measurements are the fewest that reach 95% (``[min, max]`` covers 1 - 2/64 = 96.9%); with
fewer, ``[min, max]`` is shown and labelled with the level it has (four: 87.5%), never as 95%;
one measurement gives no interval at all (a ranking then uses its relative tolerance).
A percentile bootstrap of the median of four returns ``[min, max]`` too, and called it 95%.

A candidate's figure is the mean over its tasks of the tasks' p50s; its interval is the mean of
the tasks' bounds (when every task's interval covers its median, this one covers the mean; its
level is shown as the lowest task's). Two candidates whose intervals overlap are tied on latency
in a ranking (:mod:`.tolerance`). A task whose profile kept no measurements gives no interval.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: the nominal level of every latency interval
LEVEL = 0.95
#: draws behind the B - A difference interval of the Compare page
N_DRAWS = 2000
#: latency figures with per-request measurements: table column -> (frame p50 column, frame samples column)
RESAMPLED: dict[str, tuple[str, str]] = {
    "latency_ms": ("latency_ms_p50", "latency_samples_ms"),
    "ttft_ms": ("ttft_ms_p50", "ttft_samples_ms"),
}


def measured(samples: object) -> bool:
    """Whether a frame cell holds the probe's measurements (a non-empty tuple; NaN or None when not)."""
    return isinstance(samples, tuple | list) and len(samples) > 0


@functools.lru_cache(maxsize=256)
def order_statistic_rank(n: int, level: float = LEVEL) -> tuple[int, float]:
    """``(j, coverage)``: the largest ``j`` whose ``[X(j), X(n+1-j)]`` covers the median with
    probability >= ``level``, and that probability; ``j = 1`` (``[min, max]``) with its own
    coverage when even that falls short (fewer than 6 measurements for 95%)."""
    if n < 1:
        return 0, math.nan
    best = 1
    for j in range(1, (n + 1) // 2 + 1):
        if 1.0 - 2.0 * float(stats.binom.cdf(j - 1, n, 0.5)) >= level:
            best = j
        else:
            break
    return best, 1.0 - 2.0 * float(stats.binom.cdf(best - 1, n, 0.5))


def order_interval(samples: Sequence[float] | None) -> tuple[float, float, float]:
    """``(low, high, coverage)`` of the median of ``samples`` (NaN x 3 without measurements).

    One measurement bounds nothing (``[x, x]`` covers the median with probability 0): NaN x 3 too,
    so a ranking falls back to its relative tolerance instead of reading two single timings'
    difference as a win.
    """
    if samples is None or not measured(samples) or len(samples) < 2:
        return math.nan, math.nan, math.nan
    values = np.sort(np.asarray(samples, dtype=float))
    j, coverage = order_statistic_rank(len(values))
    return float(values[j - 1]), float(values[len(values) - j]), coverage


def median_interval(samples: Sequence[float] | None) -> tuple[float, float]:
    """One task's p50 interval (:func:`order_interval` without its level)."""
    low, high, _ = order_interval(samples)
    return low, high


@dataclass(frozen=True)
class FigureInterval:
    """Per candidate: the figure's interval bounds and their level (NaN where not measured)."""

    low: np.ndarray
    high: np.ndarray
    level: np.ndarray


def figure_intervals(best: pd.DataFrame, candidates: Sequence[str], column: str) -> FigureInterval:
    """Intervals of ``column`` (a key of :data:`RESAMPLED`) per candidate: the mean over its tasks
    of each task's bounds; NaN for a candidate with a task whose measurements were not kept."""
    rows_of = best.reindex(columns=["candidate", *RESAMPLED[column]])  # frames from before a column existed: NaN
    low, high, level = (np.full(len(candidates), np.nan) for _ in range(3))
    for j, cand in enumerate(candidates):
        rows = [samples for _, p50, samples in rows_of[rows_of["candidate"] == cand].itertuples(index=False) if pd.notna(p50)]
        if rows and all(measured(s) for s in rows):
            bounds = np.array([order_interval(s) for s in rows])
            low[j], high[j], level[j] = bounds[:, 0].mean(), bounds[:, 1].mean(), bounds[:, 2].min()
    return FigureInterval(low, high, level)


def _redrawn_medians(samples: Sequence[float], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    values = np.asarray(samples, dtype=float)
    return np.median(values[rng.integers(0, len(values), size=(n_boot, len(values)))], axis=1)


def difference_interval(samples_a: Sequence[float] | None, samples_b: Sequence[float] | None, seed: int) -> tuple[float, float]:
    """95% interval of ``p50(B) - p50(A)`` from redrawing each side's measurements on its own
    (two runs' prompts are timed apart, so nothing pairs them); NaN, NaN if a side has none."""
    if samples_a is None or samples_b is None or not (measured(samples_a) and measured(samples_b)):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    a, b = _redrawn_medians(samples_a, N_DRAWS, rng), _redrawn_medians(samples_b, N_DRAWS, rng)
    low, high = np.percentile(b - a, [2.5, 97.5])
    return float(low), float(high)

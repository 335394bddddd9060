"""How sure is a candidate's single-stream latency? Resample the serving probe's measurements.

A candidate's latency figure is the mean, over its tasks, of each task's p50 of a handful of
end-to-end times (the probe sends four prompts after a warm-up). Four times can put two
candidates 3 ms apart in either order, so a ranking that weighs latency must not treat the
smaller p50 as a sure win: each bootstrap draw of the ranking (:mod:`.rank_intervals`) also
redraws every task's measurements with replacement and takes their median again, so the rank
intervals carry latency's uncertainty as well as quality's. The same draws give the figure's
own 95% percentile interval, which the tables and the trade-off chart show.

A task whose profile kept no measurements (a profile from before they were recorded) keeps its
p50 in every draw: it adds no spread, which the interval then understates, never overstates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: draws behind each interval (the ranking uses its own ``n_boot``)
N_DRAWS = 2000
#: latency figures with per-request measurements: table column -> (frame p50 column, frame samples column)
RESAMPLED: dict[str, tuple[str, str]] = {
    "latency_ms": ("latency_ms_p50", "latency_samples_ms"),
    "ttft_ms": ("ttft_ms_p50", "ttft_samples_ms"),
}


@dataclass(frozen=True)
class FigureDraws:
    """Bootstrap draws of one latency figure: ``replicates`` is (draws, candidates); NaN where unmeasured."""

    candidates: tuple[str, ...]
    replicates: np.ndarray
    #: per candidate: every task behind its figure kept its measurements (else no interval is shown)
    complete: np.ndarray | None = None

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """2.5% and 97.5% of each candidate's draws; NaN for a candidate never measured, or with a
        task whose measurements were not kept (its fixed p50 would make the interval look narrow)."""
        low, high = np.full(len(self.candidates), np.nan), np.full(len(self.candidates), np.nan)
        measured = np.isfinite(self.replicates).all(axis=0) & (True if self.complete is None else self.complete)
        if measured.any():
            low[measured], high[measured] = np.percentile(self.replicates[:, measured], [2.5, 97.5], axis=0)
        return low, high


def measured(samples: object) -> bool:
    """Whether a frame cell holds the probe's measurements (a non-empty tuple; NaN or None when not)."""
    return isinstance(samples, tuple | list) and len(samples) > 0


def task_medians(samples: Sequence[float] | None, p50: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` medians of ``samples`` redrawn with replacement; ``p50`` in each when there are none."""
    if not measured(samples):
        return np.full(n_boot, p50, dtype=float)
    values = np.asarray(samples, dtype=float)
    picks = rng.integers(0, len(values), size=(n_boot, len(values)))
    return np.median(values[picks], axis=1)


def figure_draws(best: pd.DataFrame, candidates: Sequence[str], column: str, n_boot: int, rng: np.random.Generator) -> FigureDraws:
    """Draws of ``column`` (a key of :data:`RESAMPLED`) per candidate: the mean over its tasks of
    each task's redrawn median, as ``ranking.candidate_figures`` averages the p50s."""
    rows_of = best.reindex(columns=["candidate", *RESAMPLED[column]])  # frames from before a column existed: NaN
    out = np.full((n_boot, len(candidates)), np.nan)
    complete = np.zeros(len(candidates), dtype=bool)
    for j, cand in enumerate(candidates):
        rows = [(p50, samples) for _, p50, samples in rows_of[rows_of["candidate"] == cand].itertuples(index=False) if pd.notna(p50)]
        if rows:
            out[:, j] = np.mean([task_medians(samples, float(p50), n_boot, rng) for p50, samples in rows], axis=0)
            complete[j] = all(measured(samples) for _, samples in rows)
    return FigureDraws(tuple(candidates), out, complete)


def median_interval(samples: Sequence[float] | None, seed: int) -> tuple[float, float]:
    """95% percentile-bootstrap interval of one task's p50 (NaN, NaN without measurements)."""
    if not measured(samples):
        return math.nan, math.nan
    low, high = np.percentile(task_medians(samples, math.nan, N_DRAWS, np.random.default_rng(seed)), [2.5, 97.5])
    return float(low), float(high)


def difference_interval(samples_a: Sequence[float] | None, samples_b: Sequence[float] | None, seed: int) -> tuple[float, float]:
    """95% interval of ``p50(B) - p50(A)`` from redrawing each side's measurements on its own
    (two runs' prompts are timed apart, so nothing pairs them); NaN, NaN if a side has none."""
    if not (measured(samples_a) and measured(samples_b)):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    a, b = task_medians(samples_a, math.nan, N_DRAWS, rng), task_medians(samples_b, math.nan, N_DRAWS, rng)
    low, high = np.percentile(b - a, [2.5, 97.5])
    return float(low), float(high)

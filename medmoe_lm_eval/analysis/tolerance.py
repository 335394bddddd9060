"""Win rates on measured figures where a difference inside the measurement's noise is a tie.

HELM's mean win rate compares point estimates; a measured figure (latency, throughput, memory,
energy) carries noise, so a pair whose difference lies inside that noise splits the win (half
each) instead of handing it to whichever run happened to be measured faster:

* single-stream latency and TTFT: the two candidates' exact 95% intervals of the median overlap
  (:mod:`.latency`); without measurements, the relative tolerance below;
* figures measured once per run: the two values lie within :data:`TOLERANCE` of each other,
  relative to the larger, ``|a - b| <= tol * max(|a|, |b|)``. The tolerances cover what the same
  candidate measured twice varies by (two runs of one model: 14% in requests/s; peak memory 0.2%),
  while a copy twice as fast (50% of the larger), or half the memory, still wins. On a heavily
  loaded machine throughput and latency varied by up to 60% between two runs
  (``bench/bench_leaderboard.py`` prints it): no tolerance can both cover that and keep a 2x
  speed-up a win, so figures measured there are worth re-measuring, not widening.

A candidate without the figure ranks below every measured one; two without it tie.
"""

from __future__ import annotations

import numpy as np

#: relative run-to-run tolerance per figure key (use_cases.FIGURES); 0 = an exact count
TOLERANCE: dict[str, float] = {
    "latency": 0.25,  # only when the probe kept no measurements (else its interval)
    "ttft": 0.25,
    "batch_latency": 0.25,
    "memory": 0.10,
    "energy": 0.30,
    "energy_per_correct": 0.30,
    "throughput": 0.30,
    "requests_per_s": 0.30,
    "parameters": 0.0,
}


def beats(values: np.ndarray, higher_is_better: bool, tol: float = 0.0, low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
    """``(C, C)`` matrix: 1 where row beats column, 0.5 a tie, 0 a loss (the diagonal 0).

    A tie: equal values, intervals ``[low, high]`` that overlap (where both have one), or values
    within ``tol`` of each other relative to the larger (where they do not)."""
    v = np.asarray(values, dtype=float)
    signed = v if higher_is_better else -v
    present = np.isfinite(v)
    better = np.where(present[:, None] & present[None, :], signed[:, None] > signed[None, :], present[:, None] & ~present[None, :])
    scale = np.maximum(np.abs(v)[:, None], np.abs(v)[None, :])
    close = np.abs(v[:, None] - v[None, :]) <= tol * scale
    if low is not None and high is not None:
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        has = np.isfinite(lo) & np.isfinite(hi)
        both = has[:, None] & has[None, :]
        overlap = (lo[:, None] <= hi[None, :]) & (lo[None, :] <= hi[:, None])
        close = np.where(both, overlap, close)
    tie = np.where(present[:, None] & present[None, :], close, ~present[:, None] & ~present[None, :])
    out = np.where(tie, 0.5, better.astype(float))
    np.fill_diagonal(out, 0.0)
    return out


def tolerant_win_rates(
    values: np.ndarray, higher_is_better: bool, tol: float = 0.0, low: np.ndarray | None = None, high: np.ndarray | None = None
) -> np.ndarray:
    """Each candidate's share of the others it beats (:func:`beats`); one candidate: 1.0."""
    n = len(values)
    if n < 2:
        return np.ones(n)
    return beats(values, higher_is_better, tol, low, high).sum(axis=1) / (n - 1)


def noise_ties(values: np.ndarray, higher_is_better: bool, tol: float = 0.0, low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
    """``(C, C)`` True where two measured, *unequal* values were counted as a tie (for the notes)."""
    v = np.asarray(values, dtype=float)
    tie = beats(v, higher_is_better, tol, low, high) == 0.5
    unequal = np.isfinite(v)[:, None] & np.isfinite(v)[None, :] & (v[:, None] != v[None, :])
    return tie & unequal

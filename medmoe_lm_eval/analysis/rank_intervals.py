"""Rank intervals: how sure is a candidate's place? Bootstrap the items, re-rank, read the spread.

As Chatbot Arena does for its ratings: draw each task's documents with replacement (stratified by
task, the same draw for every candidate, so the pairing is kept), recompute every candidate's
per-task quality and its combined score, rank, and repeat. A candidate's rank interval is the
2.5-97.5% range of its ranks over the draws. Two candidates whose intervals overlap are not told
apart by the data; a candidate whose interval overlaps the leader's is tied with it.

A run without a per-sample log has no items to draw; its task score is drawn from a normal
distribution with lm-eval's standard error instead (fixed when that is unknown too). Single-stream
latency, which a use case may weigh, is redrawn alongside (:mod:`.latency`) and enters each draw
as a ``shift`` of the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

N_BOOT = 1000
SEED = 20240601


@dataclass(frozen=True)
class TaskDraws:
    """One task's per-item scores for the candidates that have them (columns in ``candidates`` order)."""

    task_index: int
    candidate_index: np.ndarray  #: which candidates (indices into the score matrix) the columns are
    scores: np.ndarray  #: documents x those candidates


def resample_quality(point: np.ndarray, stderr: np.ndarray, draws: list[TaskDraws], n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Bootstrap replicates of the candidates x tasks quality matrix: shape (n_boot, C, T).

    Cells covered by ``draws`` are means over resampled documents (one multinomial draw per task,
    shared by its candidates); the others are normal draws around ``point`` with ``stderr`` (NaN
    stderr: the point value in every replicate).
    """
    rng = np.random.default_rng(seed)
    n_c, n_t = point.shape
    noise = rng.standard_normal((n_boot, n_c, n_t))
    spread = np.where(np.isfinite(stderr), stderr, 0.0)
    out = point[None, :, :] + noise * spread[None, :, :]
    for draw in draws:
        n = draw.scores.shape[0]
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n
        out[:, draw.candidate_index, draw.task_index] = weights @ draw.scores
    return out


def win_rate_scores(quality: np.ndarray) -> np.ndarray:
    """HELM mean win rate over tasks: per task the share of other candidates beaten (a tie counts
    half), averaged over tasks. ``quality`` is (..., C, T); returns (..., C). One candidate: 1.0."""
    n_c = quality.shape[-2]
    if n_c < 2:
        return np.ones(quality.shape[:-1])
    # average rank among the candidates = 1 + others beaten + half the ties (sorting: O(C log C))
    beats = stats.rankdata(np.nan_to_num(quality, nan=-np.inf), method="average", axis=-2) - 1.0  # a missing score beats nobody
    return (beats / (n_c - 1)).mean(axis=-1)


def figure_win_rates(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per row of ``values`` (..., C): the share of the other candidates each beats on one figure
    (ties half, a missing value below every measured one), as ``ranking.figure_win_rate`` does
    for one row. One candidate: 1.0."""
    n_c = values.shape[-1]
    if n_c < 2:
        return np.ones(values.shape)
    signed = np.nan_to_num(values if higher_is_better else -values, nan=-np.inf)
    return (stats.rankdata(signed, method="average", axis=-1) - 1.0) / (n_c - 1)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Competition ranks (1 = best, ties share the better rank) along the last axis."""
    return stats.rankdata(-np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf), method="min", axis=-1).astype(int)


def rank_intervals(
    point: np.ndarray,
    stderr: np.ndarray,
    draws: list[TaskDraws],
    score: Callable[[np.ndarray], np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = SEED,
    among: np.ndarray | None = None,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point ranks, 2.5% rank, 97.5% rank) of the candidates in ``among`` (a mask; default all).

    ``score`` maps a (..., C, T) quality array to (..., C) scores (higher is better); it sees every
    candidate, and only those in ``among`` are ranked (those failing a hard limit keep their part
    in the win rates but take no rank). ``shift`` (n_boot, C) is added to each draw's scores: how
    far the other resampled figures (latency) move each candidate's score in that draw.
    """
    keep = np.ones(point.shape[0], dtype=bool) if among is None else np.asarray(among, dtype=bool)
    point_ranks = ranks(score(point)[keep])
    drawn = score(resample_quality(point, stderr, draws, n_boot, seed))
    replicates = ranks((drawn if shift is None else drawn + shift)[:, keep])
    low = np.floor(np.percentile(replicates, 2.5, axis=0)).astype(int)
    high = np.ceil(np.percentile(replicates, 97.5, axis=0)).astype(int)
    return point_ranks, np.minimum(low, point_ranks), np.maximum(high, point_ranks)


def tied_with_leader(point_ranks: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Whether each candidate's interval overlaps the leader's (the leader: when anyone's does)."""
    if len(point_ranks) == 0:
        return np.zeros(0, dtype=bool)
    leader = int(np.argmin(point_ranks))
    overlaps = low <= high[leader]
    overlaps[leader] = bool(np.delete(overlaps, leader).any()) if len(point_ranks) > 1 else False
    return overlaps

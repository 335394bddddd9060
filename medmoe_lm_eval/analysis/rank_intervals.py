"""Rank numbers the data supports: simultaneous comparisons by a max-t bootstrap, then shared ranks.

Mogstad, Romano, Shaikh & Wilhelm (2024, "Inference for ranks"): bootstrap the items (per task,
the same draw for every candidate, so the pairing is kept), recompute every candidate's accuracy
per task (and ECE) in each draw, and studentise every pairwise difference with its bootstrap
standard error. The 95% quantile of the *largest* centred |t| over all pairs and components is the
critical value; a difference whose |t| exceeds it is significant, and all such claims hold jointly
with 95% probability (:func:`certain_beats`). (Bootstrapping the win-rate score itself does not
work: a rank statistic's extremes are biased in every draw, so 20 equal candidates looked apart.)

A pair of candidates is then compared as the use case weighs its figures: the weighted share of
figures on which one is surely better (not told apart: half each; measured figures by their
noise, :mod:`.tolerance`). One is significantly better than the other when its sure wins outweigh
the other's (a share above one half) and its score (HELM win rate of the point estimates) is
higher as well. As Chatbot Arena numbers ranks:

* rank = 1 + the number of candidates significantly better (candidates not told apart share it);
* rank range = [rank, C - the number significantly worse], which holds whenever the joint
  claims do;
* tied with the leader = not significantly worse than the top point score.

A run without a per-sample log has no items to draw; its task score is drawn from a normal
distribution with lm-eval's standard error instead (fixed when that is unknown too). Expected
calibration error is recomputed from the drawn items of each draw (:class:`TaskDraws.ece_gaps`).
Draws are made a chunk at a time, so memory stays bounded for tasks of any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

N_BOOT = 1000
SEED = 20240601
LEVEL = 0.95
#: draws x documents held at once (about 16 MB of counts)
CHUNK_CELLS = 2_000_000
#: scores are compared after rounding: floating-point noise never decides a win
DIGITS = 10


@dataclass(frozen=True)
class TaskDraws:
    """One task's per-item scores for the candidates that have them (columns in ``candidates`` order)."""

    task_index: int
    candidate_index: np.ndarray  #: which candidates (indices into the score matrix) the columns are
    scores: np.ndarray  #: documents x those candidates (the metric's own scale: 0/1 for accuracy)
    #: documents x those candidates x 10 bins: (confidence - correct) in the document's bin, else 0;
    #: None when the task has no option log-likelihoods (no calibration figure)
    ece_gaps: np.ndarray | None = None
    #: cluster code (0..G-1) per document: a draw takes whole clusters (items sharing a source are
    #: not independent); None: documents are drawn one by one
    clusters: np.ndarray | None = None

    def counts(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` draws as counts per document (size, n) and each draw's number of documents (size, 1)."""
        n = self.scores.shape[0]
        if self.clusters is None:
            return _counts(rng, n, size), np.full((size, 1), float(n))
        per_doc = _counts(rng, int(self.clusters.max()) + 1, size)[:, self.clusters]
        return per_doc, per_doc.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Draws:
    """One chunk of bootstrap replicates: quality (B, C, T) and, where known, ECE (B, C)."""

    quality: np.ndarray
    ece: np.ndarray | None


def _counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap draws of ``n`` documents as counts per document (size, n): a multinomial
    draw, made by counting uniform picks (several times faster than ``rng.multinomial``)."""
    picks = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=size * n).reshape(size, n).astype(float)


def resample(point: np.ndarray, stderr: np.ndarray, draws: list[TaskDraws], n_boot: int, seed: int = SEED, ece_point: np.ndarray | None = None):
    """Yield :class:`Draws` chunks, ``n_boot`` replicates in all, of the candidates x tasks quality.

    Cells covered by ``draws`` are means over resampled documents (one multinomial draw per task,
    of whole clusters where the task names them, shared by its candidates: count-weighted sums, so equal counts give equal means exactly);
    the others are normal draws around ``point`` with ``stderr`` (NaN stderr: the point value).
    ECE per candidate is the mean over its tasks with ``ece_gaps`` of each draw's ECE, or
    ``ece_point`` in every draw where the candidate has no per-item records.
    """
    rng = np.random.default_rng(seed)
    n_c, n_t = point.shape
    spread = np.where(np.isfinite(stderr), stderr, 0.0)
    largest = max([d.scores.shape[0] for d in draws] + [1])
    chunk = max(1, min(n_boot, CHUNK_CELLS // largest))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        out = point[None, :, :] + rng.standard_normal((size, n_c, n_t)) * spread[None, :, :]
        ece_sum, ece_n = np.zeros((size, n_c)), np.zeros(n_c)
        for draw in draws:
            counts, n = draw.counts(rng, size)
            out[:, draw.candidate_index, draw.task_index] = (counts @ draw.scores) / n
            if draw.ece_gaps is not None:
                binned = np.einsum("bd,dcz->bcz", counts, draw.ece_gaps, optimize=True)
                ece_sum[:, draw.candidate_index] += np.abs(binned).sum(axis=2) / n
                ece_n[draw.candidate_index] += 1
        ece = None
        if ece_point is not None:
            ece = np.where(ece_n > 0, ece_sum / np.maximum(ece_n, 1), np.broadcast_to(ece_point, (size, n_c)))
        done += size
        yield Draws(out, ece)


def win_rate_scores(quality: np.ndarray) -> np.ndarray:
    """HELM mean win rate over tasks: per task the share of other candidates beaten (a tie counts
    half), averaged over tasks. ``quality`` is (..., C, T); returns (..., C). One candidate: 1.0.
    Values are rounded to :data:`DIGITS` first, so equal scores reached by different sums tie."""
    n_c = quality.shape[-2]
    if n_c < 2:
        return np.ones(quality.shape[:-1])
    rounded = np.round(np.nan_to_num(quality, nan=-np.inf), DIGITS)  # a missing score beats nobody
    beats = stats.rankdata(rounded, method="average", axis=-2) - 1.0
    return (beats / (n_c - 1)).mean(axis=-1)


def figure_win_rates(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per row of ``values`` (..., C): the share of the other candidates each beats on one figure
    (ties half, a missing value below every measured one). One candidate: 1.0."""
    n_c = values.shape[-1]
    if n_c < 2:
        return np.ones(values.shape)
    signed = np.round(np.nan_to_num(values if higher_is_better else -values, nan=-np.inf), DIGITS)
    return (stats.rankdata(signed, method="average", axis=-1) - 1.0) / (n_c - 1)


def draw_components(
    point: np.ndarray, stderr: np.ndarray, draws: list[TaskDraws], n_boot: int = N_BOOT, seed: int = SEED, ece_point: np.ndarray | None = None
) -> np.ndarray:
    """Bootstrap replicates of every drawn component, (n_boot, C, T [+ 1 for ECE when given])."""
    chunks = []
    for chunk in resample(point, stderr, draws, n_boot, seed, ece_point):
        chunks.append(chunk.quality if chunk.ece is None else np.concatenate([chunk.quality, chunk.ece[:, :, None]], axis=2))
    return np.concatenate(chunks, axis=0)


def certain_beats(point: np.ndarray, replicates: np.ndarray, higher: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, float]:
    """``(C, C, K)``: 1 where row is significantly better than column on component k, 0 worse, 0.5
    not told apart; and the max-t critical value.

    ``point`` (C, K) and ``replicates`` (B, C, K) are the components (tasks' accuracy, ECE);
    ``higher`` (K,) says which way is better. Every pairwise difference is studentised with its
    bootstrap standard error, and the 95% quantile of the largest centred |t| over all pairs and
    components is the critical value (Mogstad et al. 2024), so all the claims hold jointly. A
    difference without spread in the draws (both aggregates with no stderr) counts when nonzero;
    a missing component ranks below a present one.
    """
    sign = np.where(np.asarray(higher, dtype=bool), 1.0, -1.0)
    present = np.isfinite(point)
    p = np.round(np.where(present, point, 0.0) * sign, DIGITS)
    r = np.round(np.nan_to_num(replicates, nan=0.0) * sign, DIGITS)
    n_b, n_c, _ = r.shape
    both = present[:, None, :] & present[None, :, :]
    se = np.zeros((n_c, n_c, p.shape[1]))
    t_max = np.zeros(n_b)
    for i in range(n_c):  # one row of pairs at a time: memory B x C x K, not B x C x C x K
        d = p[i][None, :] - p
        rd = r[:, i : i + 1, :] - r
        se[i] = rd.std(axis=0)
        varies = (se[i] > 10.0**-DIGITS) & both[i]
        t = np.where(varies[None], np.abs(rd - d[None]) / np.where(varies, se[i], 1.0)[None], 0.0)
        t_max = np.maximum(t_max, t.reshape(n_b, -1).max(axis=1))
    varies = (se > 10.0**-DIGITS) & both
    critical = float(np.quantile(t_max, level)) if varies.any() else np.inf
    diff = p[:, None, :] - p[None, :, :]
    better = np.where(varies, diff / np.where(varies, se, 1.0) > critical, diff > 0)
    better = np.where(both, better, present[:, None, :] & ~present[None, :, :])
    worse = np.swapaxes(better, 0, 1)
    out = np.where(better, 1.0, np.where(worse, 0.0, 0.5))
    out[np.arange(n_c), np.arange(n_c)] = 0.0
    return out, critical


@dataclass(frozen=True)
class JointRanks:
    """Per candidate (in the order given): rank, the joint 95% rank range, and who is better."""

    rank: np.ndarray
    low: np.ndarray
    high: np.ndarray
    better: np.ndarray  #: (C, C) True where row is significantly better than column


def joint_ranks(preference: np.ndarray, scores: np.ndarray | None = None) -> JointRanks:
    """Ranks from ``preference`` (C, C): the weighted share of the use case's figures on which row
    is surely better than column (ties inside the noise half each). Row is significantly better
    when that share exceeds one half (its sure wins outweigh the column's) and its point ``scores``
    is higher too, so a rank never contradicts the score the table lists by."""
    pref = np.round(np.asarray(preference, dtype=float), DIGITS)
    n = len(pref)
    better = pref > 0.5
    if scores is not None:
        s = np.round(np.asarray(scores, dtype=float), DIGITS)
        better &= s[:, None] > s[None, :]
    np.fill_diagonal(better, False)
    rank = 1 + better.sum(axis=0)
    return JointRanks(rank.astype(int), rank.astype(int), (n - better.sum(axis=1)).astype(int), better)


def tied_with_leader(joint: JointRanks, scores: np.ndarray) -> np.ndarray:
    """Not significantly worse than the top point score (the leader: when anyone else is tied)."""
    if len(scores) == 0:
        return np.zeros(0, dtype=bool)
    leader = int(np.argmax(np.round(scores, DIGITS)))
    tied = ~joint.better[leader]
    tied[leader] = bool(np.delete(tied, leader).any()) if len(scores) > 1 else False
    return tied

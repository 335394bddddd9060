"""Paired statistics for two candidates on the same items: difference, 95% interval, test, Holm.

Two candidates that answered the same documents are compared document by document, which removes
the variance of the questions themselves (a hard question is hard for both):

* the difference of means ``b - a`` with a 95% paired bootstrap interval (``scipy.stats.bootstrap``
  with ``paired=True``, BCa; percentile when BCa is undefined);
* a paired test: exact McNemar for 0/1 metrics (``statsmodels``; only discordant pairs count),
  a paired permutation test for continuous ones (``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``: each pair's two scores swap, i.e. each difference flips sign;
  exact for up to 2^13 sign patterns);
* Holm's correction across the tasks of one comparison (``statsmodels`` ``multipletests``), so
  comparing on nine tasks does not find a "significant" one by chance;
* with cluster labels (items sharing a source document or subject, :mod:`.clusters`), whole
  clusters are resampled for the interval and the standard error is the clustered one (Miller
  2024). The test stays the item-level one (it assumes independent items, so alone it would be
  too eager); a verdict needs the clustered interval to exclude 0 as well.

When every paired difference is the same the interval is that one value; when they are all 0
(two runs of one model) the difference is 0 and p = 1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from medmoe_lm_eval.analysis.clusters import cluster_bootstrap_interval, clustered_se, n_clusters, naive_se

CONFIDENCE = 0.95
N_RESAMPLES = 4000
SEED = 20240601
#: fewest paired items a difference can be judged on: one pair shows a difference but no spread,
#: so it gives no interval (and a ranking leaves such a task out rather than read it as a win)
MIN_PAIRED = 2


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` on paired items with its interval and test."""

    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n_paired: int
    n_clusters: int = 0  #: clusters resampled (0: items independent)
    se: float = math.nan  #: standard error of the mean difference (clustered when ``n_clusters``)

    @property
    def interval_contains_zero(self) -> bool:
        return self.ci_low <= 0.0 <= self.ci_high


def is_binary(*arrays: np.ndarray) -> bool:
    return all(np.isin(np.asarray(a, dtype=float), (0.0, 1.0)).all() for a in arrays)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y - x, axis=axis)


def bootstrap_interval(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """95% paired bootstrap interval of ``mean(y - x)``; NaN, NaN from fewer than :data:`MIN_PAIRED`
    pairs (resampling one pair always redraws it: a zero-width interval that would claim certainty)."""
    d = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
    if len(d) < MIN_PAIRED:
        return math.nan, math.nan
    if np.all(d == d[0]):
        return float(d.mean()), float(d.mean())
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (x, y), _mean_difference, paired=True, vectorized=True, confidence_level=CONFIDENCE,
                n_resamples=N_RESAMPLES, method=method, rng=np.random.default_rng(seed),
            )  # fmt: skip
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    return float(d.mean()), float(d.mean())


def mcnemar_exact(x: np.ndarray, y: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes (binomial on the discordant pairs)."""
    x, y = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    table = [[int(np.sum(x & y)), int(np.sum(x & ~y))], [int(np.sum(~x & y)), int(np.sum(~x & ~y))]]
    return float(min(1.0, mcnemar(table, exact=True).pvalue))


def permutation_p(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> float:
    """Two-sided paired permutation p-value of ``mean(y - x)`` (sign flips of the differences).

    One pair has two sign flips, ``d`` and ``-d``, both as extreme as the observed one: p = 1
    exactly (scipy refuses a sample of one, so it is answered here).
    """
    d = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
    if np.all(d == 0) or len(d) < 2:
        return 1.0
    res = stats.permutation_test(
        (x, y), _mean_difference, permutation_type="samples", vectorized=True, n_resamples=9999,
        alternative="two-sided", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(min(1.0, res.pvalue))


def paired_difference(x: np.ndarray, y: np.ndarray, seed: int = SEED, clusters: np.ndarray | None = None) -> PairedDifference:
    """Difference ``b - a`` of two candidates' per-item scores ``x`` (a) and ``y`` (b), same order.

    ``clusters`` (one label per item, None for none) switches the interval to the cluster bootstrap
    and the standard error to the clustered one when the items form at least 2 clusters, some of
    more than one item.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired scores need two equal-length, non-empty vectors (got {x.shape} and {y.shape})")
    delta = float((y - x).mean())
    groups = n_clusters(clusters, len(x)) if clusters is not None else len(x)
    clustered = 2 <= groups < len(x)
    low, high = cluster_bootstrap_interval(x, y, clusters, CONFIDENCE, seed) if clustered else bootstrap_interval(x, y, seed)
    binary = is_binary(x, y)
    p = mcnemar_exact(x, y) if binary else permutation_p(x, y, seed)
    test = "exact McNemar" if binary else "paired permutation"
    se = clustered_se(y - x, clusters) if clustered else naive_se(y - x) if len(x) >= MIN_PAIRED else math.nan
    return PairedDifference(float(x.mean()), float(y.mean()), delta, low, high, p, test, len(x), groups if clustered else 0, se)


def discordance(x: np.ndarray, y: np.ndarray) -> float:
    """Share of paired items on which two 0/1 outcomes differ (NaN for other scores)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.mean(x != y)) if len(x) and is_binary(x, y) else math.nan


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted)."""
    values = np.asarray(p_values, dtype=float)
    out = np.full(values.shape, np.nan)
    known = np.isfinite(values)
    if known.any():
        out[known] = multipletests(values[known], method="holm")[1]
    return [float(v) for v in out]

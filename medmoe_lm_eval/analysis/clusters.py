"""Clustered standard errors and the cluster bootstrap: items that share a source are not independent.

MedQuAD answers from one document, MedMCQA questions of one subject: an item's neighbours tell
something about it, so ``n`` items carry less information than ``n`` independent ones and the
naive standard error is too small (Miller 2024, "Adding Error Bars to Evals", found clustered
errors up to 3x the naive ones). The fix is to treat the cluster as the unit:

* :func:`clustered_se`: Miller's clustered standard error of a mean (the Liang-Zeger sandwich
  with the plug-in variance): ``sqrt(sum_c (sum_{i in c} (x_i - mean))^2) / n``. When every
  cluster's items are identical copies it equals the standard error of the cluster means, and
  exceeds the naive one (:func:`naive_se`, same plug-in convention) by sqrt(cluster size);
* :func:`cluster_weights`: bootstrap weights that draw whole clusters with replacement (items
  without a cluster label are clusters of one, so no labels at all is the item bootstrap);
* :func:`cluster_bootstrap_interval`: the paired difference's percentile interval from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

N_RESAMPLES = 4000
SEED = 20240601


def cluster_codes(labels: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    """Integer cluster codes ``0..G-1`` for ``n`` items; a missing label (None, NaN, "") is a cluster of its own."""
    if labels is None:
        return np.arange(n)
    series = pd.Series(list(labels), dtype=object)
    if len(series) != n:
        raise ValueError(f"{len(series)} cluster labels for {n} items")
    missing = series.isna() | (series.astype(str) == "")
    codes = pd.factorize(series.where(~missing, None))[0]
    n_named = int(codes.max()) + 1 if (codes >= 0).any() else 0
    codes[missing.to_numpy()] = n_named + np.arange(int(missing.sum()))
    return codes


def n_clusters(labels: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> int:
    return int(cluster_codes(labels, n).max()) + 1 if n else 0


def item_clusters(items: pd.DataFrame, task: str, index: pd.Index) -> pd.Series | None:
    """The cluster label of each document in ``index`` ((doc_id, doc_hash)) from an item frame
    (``store.samples.load_items``), or None when the task's items carry none."""
    if "cluster" not in items.columns:
        return None
    rows = items[(items["task"] == task) & items["cluster"].notna()].drop_duplicates(["doc_id", "doc_hash"])
    if rows.empty:
        return None
    return rows.set_index(["doc_id", "doc_hash"])["cluster"].reindex(index)


def naive_se(values: np.ndarray) -> float:
    """Plug-in standard error of the mean, items independent: ``sqrt(mean((x - mean)^2) / n)``."""
    x = np.asarray(values, dtype=float)
    return float(math.sqrt(np.mean((x - x.mean()) ** 2) / len(x))) if len(x) else math.nan


def clustered_se(values: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series | None) -> float:
    """Clustered standard error of the mean of ``values`` (clusters from ``labels``)."""
    x = np.asarray(values, dtype=float)
    if not len(x):
        return math.nan
    codes = cluster_codes(labels, len(x))
    sums = np.bincount(codes, weights=x - x.mean())
    return float(math.sqrt(np.sum(sums**2)) / len(x))


def cluster_counts(codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, G) times each of the G clusters is drawn, G draws with replacement per replicate."""
    g = int(codes.max()) + 1
    return rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot)


def cluster_weights(labels: Sequence[Any] | np.ndarray | pd.Series | None, n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) item weights of a whole-cluster bootstrap; each row sums to 1, so ``weights @ scores``
    is each replicate's mean over the drawn items.

    Without labels (or all distinct) this is the item bootstrap, drawing from ``rng`` exactly as
    ``rng.multinomial(n, [1/n] * n, size=n_boot) / n`` does.
    """
    codes = cluster_codes(labels, n)
    counts = cluster_counts(codes, n_boot, rng).astype(float)
    per_item = counts[:, codes]
    return per_item / per_item.sum(axis=1, keepdims=True)


def replicate_sums(
    values: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series | None, n_boot: int = N_RESAMPLES, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-cluster bootstrap of the column sums of ``values`` (n items x k columns).

    Returns ((n_boot, k) sums over each replicate's drawn items, (n_boot,) their item counts).
    Computed on cluster sums in blocks of replicates, so memory stays at (block, G), not (n_boot, n).
    """
    v = np.asarray(values, dtype=float).reshape(len(values), -1)
    codes = cluster_codes(labels, len(v))
    per_cluster = np.stack([np.bincount(codes, weights=v[:, j]) for j in range(v.shape[1])], axis=1)
    sizes = np.bincount(codes).astype(float)
    rng = np.random.default_rng(seed)
    sums, counts = [], []
    for start in range(0, n_boot, _BLOCK):
        drawn = cluster_counts(codes, min(_BLOCK, n_boot - start), rng).astype(float)
        sums.append(drawn @ per_cluster)
        counts.append(drawn @ sizes)
    return np.concatenate(sums), np.concatenate(counts)


_BLOCK = 500


def _percentiles(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    finite = replicates[np.isfinite(replicates)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def cluster_bootstrap_interval(
    x: np.ndarray, y: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series | None, confidence: float = 0.95, seed: int = SEED
) -> tuple[float, float]:
    """Percentile interval of ``mean(y - x)``, drawing whole clusters."""
    d = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
    sums, counts = replicate_sums(d, labels, seed=seed)
    return _percentiles(sums[:, 0] / counts, confidence)


def ratio_interval(
    x: np.ndarray, y: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series | None = None, confidence: float = 0.95, seed: int = SEED
) -> tuple[float, float]:
    """Paired percentile interval of ``mean(y) / mean(x)`` (items, or whole clusters with ``labels``);
    replicates where ``mean(x)`` is 0 are left out."""
    sums, _ = replicate_sums(np.column_stack([x, y]), labels, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(sums[:, 1] / sums[:, 0], confidence)

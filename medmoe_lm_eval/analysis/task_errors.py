"""lm-eval's standard error beside the clustered one, per candidate and task.

lm-eval computes a task's ``*_stderr`` as if every item were independent (``sd / sqrt(n)``); its
aggregation never sees which items share a source. Rather than rewrite lm-eval's numbers in the
results files, the clustered standard error is computed after the fact from the per-sample logs,
for tasks whose metadata names a cluster field (:class:`~medmoe_lm_eval.store.samples.ClusterSpec`),
and shown beside lm-eval's with the cluster count and the design effect (clustered / naive
variance: how many items one independent item is worth).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from medmoe_lm_eval.analysis.clusters import clustered_se, n_clusters, naive_se
from medmoe_lm_eval.analysis.quality import main_metric_rows
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items

COLUMNS = ["candidate", "task", "metric", "n", "n_clusters", "stderr_lm_eval", "stderr_naive", "stderr_clustered", "design_effect"]


def clustered_errors(results: ResultsSet, candidates: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per candidate x task whose items carry cluster labels (see :data:`COLUMNS`)."""
    frame = results.frame if candidates is None else results.frame[results.frame["candidate"].isin(list(candidates))]
    main = main_metric_rows(frame)
    if main.empty:
        return pd.DataFrame(columns=COLUMNS)
    items, _ = load_items(results, sorted(set(main["candidate"])), sorted(set(main["task"])))
    if items.empty or items["cluster"].isna().all():
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for row in main.itertuples(index=False):
        mine = items[(items["candidate"] == row.candidate) & (items["task"] == row.task) & (items["metric"] == row.metric)]
        if mine.empty or mine["cluster"].isna().all():
            continue
        scores, labels = mine["score"].to_numpy(dtype=float), mine["cluster"].to_numpy(dtype=object)
        naive, clustered = naive_se(scores), clustered_se(scores, labels)
        rows.append(
            {
                "candidate": row.candidate, "task": row.task, "metric": row.metric, "n": len(scores), "n_clusters": n_clusters(labels, len(scores)),
                "stderr_lm_eval": float(row.stderr), "stderr_naive": naive, "stderr_clustered": clustered,
                "design_effect": (clustered / naive) ** 2 if naive > 0 else float("nan"),
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)

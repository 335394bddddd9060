"""Calibration and selective answering of each candidate on each multiple-choice task.

From the per-item records (``store.samples``): a document's confidence is the top option's
probability (softmax of the option log-likelihoods), right or wrong is its ``acc``. Figures:

* ``ece``: expected calibration error, 10 equal-width bins (``benchmarks.calibration``, the same
  function lm-eval aggregates with, so it equals the run's own ``ece`` metric);
* ``brier_score``: the mean of the per-document Brier scores lm-eval logged (the gold option is
  only in the run's own records, so it is never recomputed here);
* ``acc_at_80`` / ``acc_at_50``: accuracy on the 80% / 50% most confident documents, i.e. when the
  candidate abstains on its least confident answers (MedHELM's selective accuracy). Equal
  confidences keep document order, so the figure is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medmoe_lm_eval.benchmarks.calibration import expected_calibration_error, option_probabilities
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items

COVERAGES = (0.8, 0.5)
COLUMNS = ["candidate", "task", "n", "accuracy", "ece", "brier_score", "acc_at_80", "acc_at_50"]


def confidence(option_ll: tuple[float, ...]) -> float:
    """The top option's probability."""
    return float(np.max(option_probabilities(option_ll)))


def selective_accuracy(conf: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ``ceil(coverage * n)`` most confident documents (ties: first in order)."""
    n = len(conf)
    if n == 0:
        return math.nan
    keep = max(1, math.ceil(coverage * n - 1e-9))
    order = np.argsort(-np.asarray(conf, dtype=float), kind="stable")[:keep]
    return float(np.asarray(correct, dtype=float)[order].mean())


def _task_row(acc: pd.DataFrame, brier: pd.Series) -> dict[str, float]:
    conf = acc["option_ll"].map(confidence).to_numpy()
    correct = acc["score"].to_numpy(dtype=float)
    pairs = np.column_stack([conf, correct])
    return {
        "n": len(acc),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(pairs),
        "brier_score": float(brier.mean()) if len(brier) else math.nan,
        **{f"acc_at_{round(c * 100)}": selective_accuracy(conf, correct, c) for c in COVERAGES},
    }


def calibration_frame(items: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate x multiple-choice task (items with option log-likelihoods and ``acc``)."""
    if items.empty:
        return pd.DataFrame(columns=COLUMNS)
    mc = items[items["option_ll"].map(lambda o: isinstance(o, tuple) and len(o) > 1)]
    rows = []
    for (cand, task), group in mc.groupby(["candidate", "task"], sort=True):
        acc = group[group["metric"] == "acc"].sort_values("doc_id", kind="stable")
        if acc.empty:
            continue
        brier = group.loc[group["metric"] == "brier_score", "score"].astype(float)
        rows.append({"candidate": cand, "task": task, **_task_row(acc, brier)})
    return pd.DataFrame(rows, columns=COLUMNS)


def calibration(results: ResultsSet, candidates: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """:func:`calibration_frame` of the board's runs, plus notes on unreadable logs."""
    items, issues = load_items(results, candidates)
    return calibration_frame(items), [str(i) for i in issues]


def ece_by_candidate(frame: pd.DataFrame, tasks: list[str] | tuple[str, ...] | None = None) -> pd.Series:
    """Each candidate's mean ``ece`` over its tasks (lm-eval's own metric rows, filter ``none``).

    What a use case weighs as ``calibration``; candidates whose tasks report no ``ece`` are absent.
    """
    rows = frame[(frame["metric"] == "ece") & (frame["filter"] == "none")]
    if tasks is not None:
        rows = rows[rows["task"].isin(list(tasks))]
    return rows.assign(value=rows["value"].astype(float)).groupby("candidate")["value"].mean().rename("ece")

"""A task's quality figure: the task's own main metric, chance-corrected for multiple choice.

Different metrics are never averaged: accuracy on MedMCQA, ROUGE-L on MedQuAD and pass@1 on MBPP
stay per task. For multiple choice, accuracy is chance-corrected, ``(acc - 1/k) / (1 - 1/k)`` with
``k`` options, so a four-option and a three-option task both read 0 at guessing and 1 at perfect
(Cohen-style correction; HELM and the Open LLM Leaderboard v2 normalise the same way).

Per-item scores come from lm-eval's per-sample logs (``store.samples``); :func:`task_matrices`
lines up every candidate's items per task on (doc_id, doc_hash), keeping only documents that all of
them answered, so resampling the rows resamples the same questions for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medmoe_lm_eval.benchmarks.metric_directions import ACCURACY_METRICS, PERCENT_SCALE_METRICS

#: Metrics that are a share of right answers, so chance correction applies on multiple choice.
CHANCE_CORRECTED = frozenset({"acc", "acc_norm"})


def chance_correct(values: np.ndarray | pd.Series | float, k: np.ndarray | pd.Series | float) -> np.ndarray:
    """``(v - 1/k) / (1 - 1/k)``; values with an unknown or trivial ``k`` (NaN, <= 1) are left as they are."""
    v = np.asarray(values, dtype=float)
    kk = np.asarray(k, dtype=float)
    usable = np.isfinite(kk) & (kk > 1)
    chance = np.where(usable, 1.0 / np.where(usable, kk, 2.0), 0.0)
    return np.where(usable, (v - chance) / (1.0 - chance), v)


def main_metric_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate x task: its main metric (filter ``none`` preferred), no group rows.

    ``accuracy`` holds the value on a 0-1 scale; ``quality`` the same, chance-corrected where the
    task is multiple choice with a known number of options; ``quality_stderr`` its standard error.
    """
    if frame.empty:
        return frame.assign(accuracy=pd.Series(dtype=float), quality=pd.Series(dtype=float), quality_stderr=pd.Series(dtype=float))
    rows = frame[~frame["is_group"].astype(bool)] if "is_group" in frame else frame
    rank = {m: i for i, m in enumerate(ACCURACY_METRICS)}
    rows = rows[rows["metric"].isin(rank)].copy()
    rows["_metric_rank"] = rows["metric"].map(rank)
    rows["_filter_rank"] = (rows["filter"] != "none").astype(int)
    rows = rows.sort_values(["candidate", "task", "_metric_rank", "_filter_rank", "filter"])
    best = rows.drop_duplicates(["candidate", "task"], keep="first")
    scale = np.where(best["metric"].isin(PERCENT_SCALE_METRICS), 100.0, 1.0)
    best = best.assign(accuracy=best["value"].astype(float) / scale)
    k = best["n_choices"] if "n_choices" in best else pd.Series(np.nan, index=best.index)
    k = k.where(best["metric"].isin(CHANCE_CORRECTED))
    stderr = best["stderr"].astype(float) / scale if "stderr" in best else pd.Series(np.nan, index=best.index)
    factor = np.where(np.isfinite(k) & (k > 1), 1.0 / (1.0 - 1.0 / k.where(k > 1, 2.0)), 1.0)
    best = best.assign(quality=chance_correct(best["accuracy"], k), quality_stderr=stderr * factor)
    return best.drop(columns=["_metric_rank", "_filter_rank"]).reset_index(drop=True)


@dataclass(frozen=True)
class TaskItems:
    """One task's per-item quality scores, documents x candidates, on the documents all share."""

    task: str
    metric: str
    scores: pd.DataFrame  #: index (doc_id, doc_hash); one column per candidate; chance-corrected
    raw: pd.DataFrame  #: the same items before chance correction (the metric's own scale)


def task_matrices(items: pd.DataFrame, main: pd.DataFrame) -> dict[str, TaskItems]:
    """Per task, the main metric's per-item scores of every candidate in ``main`` that has items.

    ``main`` is :func:`main_metric_rows` output (it says which metric is the task's main one).
    A task where fewer than one candidate has items, or where they share no document, is left out.
    """
    out: dict[str, TaskItems] = {}
    if items.empty or main.empty:
        return out
    for task, rows in main.groupby("task", sort=True):
        metric = str(rows["metric"].iloc[0])
        chosen = items[(items["task"] == task) & (items["metric"] == metric) & items["candidate"].isin(rows["candidate"])]
        if chosen.empty:
            continue
        raw = chosen.pivot_table(index=["doc_id", "doc_hash"], columns="candidate", values="score", aggfunc="first").dropna()
        if raw.empty:
            continue
        raw = raw.astype(float)
        corrected = raw
        if metric in CHANCE_CORRECTED:
            k = chosen.drop_duplicates(["doc_id", "doc_hash"]).set_index(["doc_id", "doc_hash"])["n_choices"].reindex(raw.index)
            corrected = raw.apply(lambda col, kk=k: pd.Series(chance_correct(col.to_numpy(), kk.to_numpy()), index=col.index))
        out[str(task)] = TaskItems(str(task), metric, corrected, raw)
    return out

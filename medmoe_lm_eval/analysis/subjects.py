"""Where a candidate fails: its main metric per subject, with intervals, against another candidate.

Subjects come from the documents themselves (MedMCQA ``subject_name``, MMLU ``subject``, MedQA
``meta_info`` step; kept by lm-eval under ``doc`` in its per-sample logs, read by
``store.samples``). Per (task, subject): the candidate's score with a 95% interval (Wilson for
right/wrong scores, the paired bootstrap of :mod:`.paired` against 0 otherwise) and, when a second
candidate is given, ``delta = b - a`` on the documents both answered with its paired bootstrap
interval. Rows come weakest first, so the subjects to worry about are on top.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from medmoe_lm_eval.analysis.paired import bootstrap_interval, is_binary, paired_difference
from medmoe_lm_eval.analysis.quality import main_metric_rows
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items

COLUMNS = ["task", "subject", "metric", "n", "a", "a_low", "a_high", "b", "delta", "ci_low", "ci_high"]


def score_interval(scores: np.ndarray) -> tuple[float, float]:
    """95% interval of a mean score: Wilson for 0/1 scores, bootstrap otherwise."""
    s = np.asarray(scores, dtype=float)
    if is_binary(s):
        low, high = proportion_confint(int(s.sum()), len(s), alpha=0.05, method="wilson")
        return float(low), float(high)
    return bootstrap_interval(np.zeros_like(s), s)


def _subject_rows(items: pd.DataFrame, task: str, metric: str, a: str, b: str | None) -> list[dict[str, object]]:
    rows = items[(items["task"] == task) & (items["metric"] == metric) & items["subject"].notna()]
    wide = rows.pivot_table(index=["doc_id", "doc_hash", "subject"], columns="candidate", values="score", aggfunc="first")
    if a not in wide.columns:
        return []
    out = []
    for subject, group in wide.groupby(level="subject", sort=True):
        mine = group[a].dropna().to_numpy(dtype=float)
        if not len(mine):  # only B answered this subject's documents: nothing to say about A here
            continue
        low, high = score_interval(mine)
        row: dict[str, object] = {"task": task, "subject": subject, "metric": metric, "n": len(mine), "a": float(mine.mean()), "a_low": low, "a_high": high}
        both = group[[a, b]].dropna() if b is not None and b in group.columns else pd.DataFrame()
        if len(both):
            diff = paired_difference(both[a].to_numpy(dtype=float), both[b].to_numpy(dtype=float))
            row.update(b=diff.b, delta=diff.delta, ci_low=diff.ci_low, ci_high=diff.ci_high)
        out.append(row)
    return out


def subject_breakdown(results: ResultsSet, a: str, b: str | None = None) -> pd.DataFrame:
    """Per task with subjects and per subject: ``a``'s main metric with its interval (and ``b - a``)."""
    names = [a] if b is None or b == a else [a, b]
    main = main_metric_rows(results.frame[results.frame["candidate"].isin(names)])
    items, _ = load_items(results, names)
    if items.empty or "subject" not in items or items["subject"].isna().all():
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for task, group in main[main["candidate"] == a].groupby("task", sort=True):
        rows += _subject_rows(items, str(task), str(group["metric"].iloc[0]), a, b if b != a else None)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["a", "task", "subject"], kind="stable").reset_index(drop=True) if len(frame) else frame


def weakest(frame: pd.DataFrame, min_n: int = 1) -> str | None:
    """One line naming the subject with the lowest score (among subjects with ``min_n`` documents)."""
    rows = frame[frame["n"] >= min_n]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return f"{row['task']} / {row['subject']}: {row['a']:.3f} [{row['a_low']:.3f}, {row['a_high']:.3f}] over {int(row['n'])} documents"

"""How good and how fast a router is: accuracy, macro-F1 and the confusion matrix on labelled queries, and time per query."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medmoe_lm_eval.harness.routing.scorers import DomainScorer, load_scorer


def evaluate_router(path: str | Path, rows: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion matrix and per-query routing time of a trained router."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    scorer = load_scorer(path)
    texts, gold = [r["text"] for r in rows], [r["domain"] for r in rows]
    pred = [scorer.domains[i] for i in scorer.predict_proba(texts).argmax(axis=1)]
    labels = sorted(set(gold) | set(pred))
    return {
        "rows": len(rows),
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro")),
        "labels": labels,
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist(),
        # the recall of each domain: the share of its queries routed to it
        "accuracy_per_domain": _share_right(gold, gold, pred),
        **({"accuracy_per_source": _share_right([r["source"] for r in rows], gold, pred)} if all("source" in r for r in rows) else {}),
        **routing_times(scorer, texts),
    }


def _share_right(keys: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """Per key, the share of its rows routed to their gold domain."""
    return {k: float(np.mean([g == p for kk, g, p in zip(keys, gold, pred) if kk == k])) for k in sorted(set(keys))}


def routing_times(scorer: DomainScorer, texts: Sequence[str], batch: int = 64) -> dict[str, float]:
    """Median milliseconds per query, routed in batches (as evaluation does) and one at a time."""
    per_query_in_batch = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        began = time.perf_counter()
        scorer.predict_proba(chunk)
        per_query_in_batch.append((time.perf_counter() - began) / len(chunk))
    single = []
    for text in texts[:300]:
        began = time.perf_counter()
        scorer.predict_proba([text])
        single.append(time.perf_counter() - began)
    return {
        "median_ms_per_query": 1000 * float(np.median(per_query_in_batch)),
        "median_ms_single_query": 1000 * float(np.median(single)),
    }

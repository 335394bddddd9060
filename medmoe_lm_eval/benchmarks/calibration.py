"""Calibration of multiple-choice answers as lm-eval metrics: ``ece`` and ``brier_score``.

A candidate's confidence in an answer is the softmax of its option log-likelihoods (the answer
distribution lm-eval's own ``brier_score`` uses). Two figures say whether that confidence can be
trusted, which accuracy alone cannot (MedHELM reports both for clinical tasks):

* expected calibration error, 10 equal-width bins over the top answer's probability:
  ``sum_b n_b / N * |acc_b - conf_b|`` (Guo et al., 2017); 0 when confidence matches accuracy,
  1 when every answer is given with certainty and is wrong;
* Brier score per document, ``sum_k (p_k - y_k)^2`` over the options (lm-eval's definition, so
  the name means the same number), averaged over documents; 0 is perfect, 2 the worst.

A task opts in by naming a ``process_results`` built here (:func:`mc_process_results`, which
also returns ``acc``) and listing ``ece`` (aggregation :func:`expected_calibration_error`) and
``brier_score`` (aggregation ``mean``) in its ``metric_list``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import softmax

N_BINS = 10

#: ``process_results(doc, results)`` as lm-eval calls it for a multiple-choice task.
ProcessResults = Callable[[dict[str, Any], Sequence[tuple[float, bool]]], dict[str, Any]]


def option_probabilities(lls: Sequence[float] | np.ndarray) -> np.ndarray:
    """The answer distribution over the options: softmax of their log-likelihoods."""
    return np.asarray(softmax(np.asarray(lls, dtype=float)), dtype=float)


def brier(probs: Sequence[float] | np.ndarray, gold: int) -> float:
    """One document's multi-class Brier score, ``sum_k (p_k - [k == gold])^2``."""
    p = np.asarray(probs, dtype=float)
    return float(np.sum((p - np.eye(len(p))[gold]) ** 2))


def expected_calibration_error(items: Sequence[tuple[float, float]] | np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE over ``(confidence, correct)`` pairs in ``n_bins`` equal-width bins of [0, 1].

    A confidence of exactly 1 falls in the top bin; an empty list gives NaN (nothing to judge).
    A pair that is not finite (options whose log-likelihoods were all -inf, in a file from
    elsewhere) has no bin and is left out.
    """
    pairs = np.asarray(items, dtype=float).reshape(-1, 2)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) == 0:
        return float("nan")
    conf, correct = pairs[:, 0], pairs[:, 1]
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() / len(pairs) * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


def calibration_scores(lls: Sequence[float], gold: int) -> dict[str, Any]:
    """Per-document ``ece`` item (top probability, right or wrong) and ``brier_score``."""
    probs = option_probabilities(lls)
    pred = int(np.argmax(probs))
    return {"ece": (float(probs[pred]), float(pred == gold)), "brier_score": brier(probs, gold)}


def mc_process_results(gold_of: Callable[[dict[str, Any]], int], choices: Sequence[str] | None = None) -> ProcessResults:
    """A ``process_results`` returning ``acc``, ``ece`` and ``brier_score`` for one task.

    ``gold_of(doc)`` gives the gold option's index (lm-eval does not pass the task's
    ``doc_to_target`` to a custom ``process_results``, so each task says where its answer is).
    With the task's fixed ``choices`` it also returns ``acc_norm`` as lm-eval computes it (each
    option's log-likelihood divided by its length in characters), so a task that lm-eval scores
    with ``acc_norm`` keeps that figure.
    """
    lengths = np.array([float(len(c)) for c in choices]) if choices is not None else None

    def process(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
        lls = [float(ll) for ll, _ in results]
        gold = gold_of(doc)
        out = {"acc": float(int(np.argmax(lls)) == gold), **calibration_scores(lls, gold)}
        if lengths is not None:
            out["acc_norm"] = float(int(np.argmax(np.asarray(lls) / lengths)) == gold)
        return out

    return process

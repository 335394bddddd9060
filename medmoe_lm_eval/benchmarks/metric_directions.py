"""Which way each lm-eval metric points, and which metric is a task's main one.

Reading results needs this to fill ``higher_is_better`` where lm-eval left it out, and ranking needs
it to orient win rates; it is knowledge about the benchmarks' metrics, so it lives with them. It is
the one table of directions: the use cases' figures (``analysis.use_cases.FIGURES``) take theirs
from their columns here, and a test checks the task YAMLs' ``higher_is_better`` agree with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

METRIC_DIRECTIONS: dict[str, bool] = {
    # accuracy-type (lm-eval names)
    "acc": True,
    "acc_norm": True,
    "acc_mutual_info": True,
    "exact_match": True,
    "em": True,
    "f1": True,
    "macro_f1": True,
    "mcc": True,
    "pass@1": True,
    "pass_at_1": True,
    "rouge1": True,
    "rouge2": True,
    "rougeL": True,
    "rougeLsum": True,
    "rougeL_f1": True,
    "rouge1_f1": True,
    "bleu": True,
    "chrf": True,
    "ter": False,
    "sandbox_isolated": True,  # medmoe_mbpp: share of programs run under kernel isolation
    "brier_score": False,
    "ece": False,
    "perplexity": False,
    "word_perplexity": False,
    "byte_perplexity": False,
    "bits_per_byte": False,
    # efficiency columns of the tidy frame, and the per-candidate columns the use cases weigh
    "accuracy": True,
    "latency_ms": False,
    "ttft_ms": False,
    "batch_latency_ms": False,
    "energy_per_request_j": False,
    "latency_ms_p50": False,
    "latency_ms_p95": False,
    "requests_per_s": True,
    "generated_tokens_per_s": True,
    "peak_memory_bytes": False,
    "energy_j": False,
    "energy_per_correct_j": False,
    "num_parameters": False,
}


#: Accuracy-type metrics, most preferred first: a task's "main" metric is the first one present.
ACCURACY_METRICS: tuple[str, ...] = (
    "acc",
    "exact_match",
    "pass@1",
    "pass_at_1",
    "f1",
    "macro_f1",
    "em",
    "acc_norm",
    "rougeL",
    "rougeL_f1",
    "rougeLsum",
    "rouge1",
    "rouge1_f1",
    "mcc",
    "bleu",
    "chrf",
)


#: Metrics lm-eval reports on a 0-100 scale; divided so every accuracy figure lies in [0, 1].
PERCENT_SCALE_METRICS = frozenset({"bleu", "chrf", "ter"})


_SHARE = (0.0, 1.0)
#: The values a metric cannot leave, for one document and for the task's mean alike (the mean of
#: values in a range stays in it). A value outside (a results folder from elsewhere, edited or
#: corrupt) is not that metric: readers drop it, saying so, where one ``acc`` of 1e308 would
#: otherwise outweigh every real document. Metrics whose scale differs between lm-eval tasks
#: (``f1`` is 0-1 in some, 0-100 in SQuAD's; ``rouge1`` likewise) are not bounded here.
METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "pass@1", "pass_at_1", "sandbox_isolated"), _SHARE),
    **dict.fromkeys(("rougeL_f1", "rouge1_f1", "macro_f1", "ece"), _SHARE),
    "mcc": (-1.0, 1.0),
    "brier_score": (0.0, 2.0),  # multi-class: the squared distance between two probability vectors
    "bleu": (0.0, 100.0),
    "chrf": (0.0, 100.0),
    "ter": (0.0, math.inf),
    **dict.fromkeys(("perplexity", "word_perplexity", "byte_perplexity"), (1.0, math.inf)),
    "bits_per_byte": (0.0, math.inf),
}


def within_bounds(metric: str, value: float) -> bool:
    """Whether ``value`` can be ``metric`` (see :data:`METRIC_BOUNDS`; an unbounded metric takes any number)."""
    low, high = METRIC_BOUNDS.get(metric, (-math.inf, math.inf))
    return low <= value <= high


def direction(metric: str, hint: Any = None) -> bool | None:
    """Whether ``metric`` is better high (True), low (False) or unknown (None).

    The table wins over ``hint`` (the run's own ``higher_is_better``) so two runs never disagree.
    """
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    if isinstance(hint, (bool, np.bool_)):
        return bool(hint)
    return None


def main_metric(metrics: Sequence[str]) -> str | None:
    """The accuracy-type metric that represents a task (first of :data:`ACCURACY_METRICS`)."""
    present = set(metrics)
    return next((m for m in ACCURACY_METRICS if m in present), None)

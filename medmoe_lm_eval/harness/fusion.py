"""How several experts' answers become one: the probability mixture, in log space.

A mixture's probability of a continuation is ``sum_i w_i * p_i(continuation | context)``. We
compute it as ``logsumexp(log w_i + log p_i)`` so tiny weights and very unlikely continuations
neither underflow to zero nor lose precision. With a single expert of weight 1 the expert's own
number is returned unchanged (bit for bit), which is what makes a top-1 mixture exactly equal
to the chosen expert run alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class FusionError(ValueError):
    """Inputs that would give a silently wrong number (NaN, negative or zero total weight)."""


def normalise(weights: Sequence[float]) -> list[float]:
    """Weights scaled to sum to one; rejects negative, NaN or all-zero weights."""
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise FusionError(f"weights must be finite and >= 0, got {list(weights)}")
    total = math.fsum(weights)
    if total <= 0:
        raise FusionError(f"weights sum to {total}; at least one must be positive")
    return [w / total for w in weights]


def mixture_logprob(logprobs: Sequence[float], weights: Sequence[float]) -> float:
    """``log sum_i w_i exp(logprobs_i)`` for weights that sum to one (exact log-sum-exp)."""
    if len(logprobs) != len(weights) or not logprobs:
        raise FusionError(f"need one weight per expert, got {len(logprobs)} logprobs and {len(weights)} weights")
    if any(math.isnan(lp) or lp > 1e-6 for lp in logprobs):
        raise FusionError(f"log-probabilities must be <= 0 and not NaN, got {list(logprobs)}")
    if len(logprobs) == 1 and weights[0] == 1.0:
        return float(logprobs[0])
    terms = [math.log(w) + lp for w, lp in zip(weights, logprobs) if w > 0]
    top = max(terms)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def fuse_loglikelihood(results: Sequence[tuple[float, bool]], weights: Sequence[float]) -> tuple[float, bool]:
    """Mixture log-probability; ``is_greedy`` comes from the first (top-weighted) expert."""
    return mixture_logprob([lp for lp, _ in results], weights), bool(results[0][1])


def fuse_rolling(totals: Sequence[float], weights: Sequence[float]) -> float:
    """A document's mixture log-probability from each expert's total over the document."""
    return mixture_logprob(totals, weights)

"""Latency and throughput of timed batches.

A batch is one backend call: it carries its request count, token counts and the
``perf_counter`` interval it ran in. Groups of batches (per task, per expert, per request type)
are summarised the same way, so every table in a profile has the same columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class BatchRecord:
    """One backend call on one batch. The caller sets ``generated_tokens`` after generating."""

    expert: str
    request_type: str
    task: str | None
    n_requests: int  #: expert calls in this batch (requests sent to this expert)
    prompt_tokens: int
    generated_tokens: int = 0
    start_s: float = 0.0  #: ``time.perf_counter()`` when the call began
    end_s: float = 0.0  #: ``time.perf_counter()`` when it returned (after a CUDA sync on GPU)
    device: str = "cpu"  #: where the expert ran (``cuda:0``, ``cpu``, ``remote``): whose counters its energy comes from

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Latency:
    """Per-batch latency in milliseconds; owns the percentiles (linear interpolation)."""

    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    n: int

    @classmethod
    def from_seconds(cls, values: Sequence[float]) -> Latency:
        if not values:
            return cls(None, None, None, None, 0)
        import numpy as np

        ms = np.asarray(values, dtype=float) * 1000.0
        p50, p95 = np.percentile(ms, [50, 95])
        return cls(float(p50), float(p95), float(ms.max()), float(ms.mean()), int(ms.size))

    def to_dict(self) -> dict[str, Any]:
        return {"p50": self.p50_ms, "p95": self.p95_ms, "max": self.max_ms, "mean": self.mean_ms, "n": self.n}


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals.

    Summing durations would count overlapping batches twice (a remote backend may run
    several at once), and the span from first start to last end would count idle gaps.
    """
    total = 0.0
    span: tuple[float, float] | None = None
    for start, end in sorted(intervals):
        if span is None or start > span[1]:
            if span is not None:
                total += span[1] - span[0]
            span = (start, end)
        else:
            span = (span[0], max(span[1], end))
    if span is not None:
        total += span[1] - span[0]
    return total


def overlap_summary(group_busy_s: Mapping[str, float], union_s: float) -> dict[str, float | None]:
    """How much of the groups' busy time overlapped, given each group's busy time and their union.

    Each group (an expert, say) reports its own busy time; the candidate's busy time is the
    union of all intervals (``busy_seconds``), not the sum. When groups work at once the sum
    exceeds the union: ``overlap_s`` is the excess and ``parallelism`` the sum over the union
    (1.0 when they took turns, up to the number of groups when they always worked together).
    """
    total = float(sum(group_busy_s.values()))
    return {
        "busy_s": float(union_s),
        "sum_of_groups_s": total,
        "overlap_s": max(0.0, total - float(union_s)),
        "parallelism": total / union_s if union_s > 0 else None,
    }


def _rate(amount: float, seconds: float) -> float | None:
    return amount / seconds if seconds > 0 else None


@dataclass(frozen=True)
class Throughput:
    """Requests and tokens over the time a group of batches kept the backend busy (seconds).

    ``requests`` counts unique lm-eval requests; ``expert_calls`` counts what the experts were
    sent. A top-2 mixture with a shared expert sends one request to up to three experts, so the
    two differ by that factor and only ``requests`` is comparable with a single model.
    ``latency`` is per *batch* (one backend call on up to ``batch_size`` documents), never
    per request: single-stream latency is measured by the serving probe. Generated tokens/s
    exists only where something was asked to generate: a multiple-choice task's 0 tok/s would
    be a figure nobody measured (and would drag a mean over tasks down).
    """

    requests: int
    wall_s: float
    prompt_tokens: int
    generated_tokens: int
    latency: Latency
    expert_calls: int | None = None  #: ``None``: the same as ``requests`` (one expert per request)
    generated: bool = True  #: whether any batch generated text; else there is no tokens/s to report

    @classmethod
    def from_records(cls, records: Sequence[BatchRecord], requests: int | None = None) -> Throughput:
        """``requests``: the unique requests behind ``records`` when known; else every call counts as one."""
        calls = sum(r.n_requests for r in records)
        return cls(
            requests=calls if requests is None else int(requests),
            wall_s=busy_seconds((r.start_s, r.end_s) for r in records),
            prompt_tokens=sum(r.prompt_tokens for r in records),
            generated_tokens=sum(r.generated_tokens for r in records),
            latency=Latency.from_seconds([r.seconds for r in records]),
            expert_calls=calls,
            generated=any(r.request_type == "generate_until" for r in records),
        )

    def to_dict(self) -> dict[str, Any]:
        calls = self.requests if self.expert_calls is None else self.expert_calls
        return {
            "requests": self.requests,
            "expert_calls": calls,
            "wall_s": self.wall_s,
            "requests_per_s": _rate(self.requests, self.wall_s),
            "expert_calls_per_s": _rate(calls, self.wall_s),
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "prompt_tokens_per_s": _rate(self.prompt_tokens, self.wall_s),
            "generated_tokens_per_s": _rate(self.generated_tokens, self.wall_s) if self.generated else None,
            "batch_latency_ms": self.latency.to_dict(),
        }


def group_by(records: Iterable[BatchRecord], key: str) -> dict[str, list[BatchRecord]]:
    """Records keyed by one attribute (``task``, ``expert``, ``request_type``); ``None`` -> ``"(none)"``."""
    groups: dict[str, list[BatchRecord]] = {}
    for rec in records:
        value = getattr(rec, key)
        groups.setdefault("(none)" if value is None else str(value), []).append(rec)
    return groups


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    import statistics

    return float(statistics.median(values))

"""The efficiency columns of one task, flat, as the results store puts them in its frame.

(A use case's weighable "figures" are ``analysis.use_cases.FIGURES``; these are the measured
columns some of them are computed from.) Each name means one thing. ``latency_ms_p50``/``_p95`` are single-stream end-to-end latency
(the serving probe: one request at a time, router included), with ``ttft_ms_p50`` and
``tpot_ms_p50`` beside them; ``batch_latency_ms_p50``/``_p95`` are per backend call on a batch
of documents and never stand in for a request's latency (a schema-1 profile, which had only
those, gets no single-stream figures). ``requests_per_s`` counts unique lm-eval requests served
in this run; ``expert_calls`` what the experts were sent; ``cache_share`` the share of the
task's documents answered from lm-eval's cache. ``latency_samples_ms``/``ttft_samples_ms`` are
the probe's measurements behind those p50s (a tuple, or ``None``), for intervals: a profile from
elsewhere is data, so only finite, non-negative numbers are kept, at most :data:`MAX_SAMPLES`.
A probe whose answers had no output tokens measured no latency (``single_stream``): its latency
figures are NaN, also in a profile written before empty answers were left out of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medmoe_lm_eval.profiling.served import cache_share

#: the frame columns :func:`task_efficiency` fills, in display order
EFFICIENCY_COLUMNS: tuple[str, ...] = (
    "latency_ms_p50", "latency_ms_p95", "ttft_ms_p50", "tpot_ms_p50", "batch_latency_ms_p50", "batch_latency_ms_p95",
    "requests_per_s", "generated_tokens_per_s", "requests_served", "expert_calls", "cache_share", "energy_j", "energy_source",
    "latency_samples_ms", "ttft_samples_ms",
)  # fmt: skip
#: the most single-stream measurements read per task (the probe takes a handful)
MAX_SAMPLES = 1000


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _samples(value: Any) -> tuple[float, ...] | None:
    """A list of latencies in ms as a tuple of floats; ``None`` unless every entry is a finite number >= 0."""
    if not isinstance(value, list) or not value or len(value) > MAX_SAMPLES:
        return None
    numbers = [_num(v) for v in value]
    return tuple(numbers) if all(math.isfinite(v) and v >= 0 for v in numbers) else None


def _answered(stream: Mapping[str, Any]) -> bool:
    """Whether the probe got at least one answer with output tokens (a profile that predates
    ``answered`` says so by ``output_tokens``: zero tokens over all its answers)."""
    count = stream.get("answered", stream.get("output_tokens"))
    return not (isinstance(count, (int, float)) and not isinstance(count, bool) and count <= 0)


def task_efficiency(profile: Mapping[str, Any] | None, task: str, n_docs: float) -> dict[str, Any]:
    """The :data:`EFFICIENCY_COLUMNS` of ``task`` (NaN, or ``None`` for text, where not measured)."""
    profile = _map(profile)
    stats = _map(_map(profile.get("tasks")).get(task))
    stream = _map(_map(profile.get("single_stream")).get(task))
    stream = stream if _answered(stream) else {}  # nothing answered: no single-stream figure at all
    batch = _map(stats.get("batch_latency_ms") or stats.get("latency_ms"))  # schema 1: latency_ms was per batch
    e2e, ttft, tpot = (_map(stream.get(k)) for k in ("e2e_ms", "ttft_ms", "tpot_ms"))
    devices = _map(_map(profile.get("energy")).get("devices"))
    sources = [str(_map(devices.get(d)).get("source")) for d in stats.get("energy_devices") or [] if _map(devices.get(d)).get("source")]
    share = cache_share(profile, task, n_docs) if profile else None
    return {
        "latency_ms_p50": _num(e2e.get("p50")),
        "latency_ms_p95": _num(e2e.get("p95")),
        "ttft_ms_p50": _num(ttft.get("p50")) if stream.get("streamed") else math.nan,
        "tpot_ms_p50": _num(tpot.get("p50")),
        "batch_latency_ms_p50": _num(batch.get("p50")),
        "batch_latency_ms_p95": _num(batch.get("p95")),
        "requests_per_s": _num(stats.get("requests_per_s")),
        "generated_tokens_per_s": _num(stats.get("generated_tokens_per_s")),
        "requests_served": _num(stats.get("requests", 0)) if profile.get("served") is not None or stats else math.nan,
        "expert_calls": _num(stats.get("expert_calls", stats.get("requests"))),
        "cache_share": math.nan if share is None else share,
        "energy_j": _num(stats.get("energy_j")),
        "energy_source": "+".join(dict.fromkeys(sources)) or None,
        "latency_samples_ms": _samples(stream.get("e2e_samples_ms")),
        "ttft_samples_ms": _samples(stream.get("ttft_samples_ms")) if stream.get("streamed") else None,
    }

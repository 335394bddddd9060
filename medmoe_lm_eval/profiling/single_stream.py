"""Single-stream latency, as MLPerf's single-stream scenario measures it.

A chatbot or an edge device serves one request at a time, so what its user waits for is not a
batch's latency but one request's: the time to the first token (TTFT), the time per output
token after it (TPOT) and the end-to-end time (E2E), router included. The serving probe
(``harness.probe``) sends a task's own prompts one by one after a warm-up, through each
backend's streaming path, and hands each measurement here as a :class:`StreamSample`.

TPOT is ``(E2E - TTFT) / (output tokens - 1)``, MLPerf's definition, so a one-token answer has
none. A backend without a streaming path yields the whole answer at once: its TTFT equals its
E2E, and the summary says ``streamed: false`` so nobody reads that TTFT as a real one.

The summary keeps each measured E2E and TTFT (warm-up excluded), not only their percentiles: a
p50 over six prompts is uncertain, and the ranking gives it an exact interval (``analysis.latency``)
so that two candidates a few milliseconds apart are not told apart by noise.

An answer with no output tokens measured no latency: the time to say nothing is not the time
to answer, and counting it would make a model that stops at once the fastest. Such prompts are
counted (``empty_answers``) and left out of every latency and energy figure; when no prompt got
an answer the figures are absent (``None``) and ``reason`` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medmoe_lm_eval.profiling.stats import Latency


@dataclass(frozen=True)
class StreamSample:
    """One request served alone. Times are seconds from the request's arrival (before routing)."""

    task: str | None
    expert: str
    router_s: float
    ttft_s: float | None  #: ``None`` when the answer was empty
    e2e_s: float
    output_tokens: int
    streamed: bool  #: the backend has a real streaming path
    start_s: float = 0.0  #: ``perf_counter`` at arrival, for the energy of the window
    device: str = "cpu"

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


def summarise(samples: Sequence[StreamSample], warmup: int, energies: Sequence[float | None] | None = None) -> dict[str, Any]:
    """p50/p95 (and mean, max) of TTFT, TPOT, E2E and router time, in milliseconds, over the
    prompts that were answered (at least one output token); ``energies`` is parallel to ``samples``."""
    paired = list(zip(samples, energies if energies is not None else [None] * len(samples)))
    answered = [(s, e) for s, e in paired if s.output_tokens > 0]
    measured = [s for s, _ in answered]
    joules = [e for _, e in answered if e is not None]
    empty = len(samples) - len(measured)
    return {
        "prompts": len(samples),
        "warmup": warmup,
        "answered": len(measured),
        "empty_answers": empty,
        "reason": f"no output tokens in any of the {len(samples)} probe answers: no latency measured" if not measured else None,
        "streamed": bool(samples) and all(s.streamed for s in samples),
        "experts": sorted({s.expert for s in samples}),
        "ttft_ms": Latency.from_seconds([s.ttft_s for s in measured if s.ttft_s is not None]).to_dict(),
        "tpot_ms": Latency.from_seconds([t for s in measured if (t := s.tpot_s) is not None]).to_dict(),
        "e2e_ms": Latency.from_seconds([s.e2e_s for s in measured]).to_dict(),
        "router_ms": Latency.from_seconds([s.router_s for s in samples]).to_dict(),
        # the measurements themselves, so a comparison of candidates can say how sure its p50s are
        "e2e_samples_ms": [s.e2e_s * 1000.0 for s in measured],
        "ttft_samples_ms": [s.ttft_s * 1000.0 for s in measured if s.ttft_s is not None],
        "output_tokens": sum(s.output_tokens for s in samples),
        "energy_per_request_j": sum(joules) / len(joules) if joules and len(joules) == len(measured) else None,
    }

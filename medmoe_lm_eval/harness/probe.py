"""The serving probe: single-stream latency on a task's own prompts, as a user would wait for it.

Batch figures say how fast a candidate chews through an evaluation; a chatbot or an edge device
serves one request at a time. So once a task's requests have been served, the probe sends a few
of the task's own prompts again, one at a time, after one warm-up, the way MLPerf's single-stream
scenario does: route the prompt (timed), then stream the top expert's answer through the
backend's streaming path (``Backend.stream``), and record time to first token, output tokens and
end-to-end time (router included). An expert loaded for the probe (after eviction under a
residency limit) is loaded outside the timed window: latency is the loaded system's.

The prompts are the requests' contexts: a multiple-choice question is answered in free text
(``MC_GEN_KWARGS``), a generation task uses its own ``gen_kwargs``, and rolling-loglikelihood
tasks (whole documents, nothing to answer) are not probed. The probe's batches are not tracked,
so batch throughput and energy figures are untouched; its routing is not written to the routing
log. What the probe cost (warm-up included) is recorded as the task's ``probe_s``: it is a
fixed ``prompts + 1`` answers per task, small against a full benchmark but most of a ``--limit``
smoke run on a tiny model, which is why a throughput comparison with ``--model hf`` (which does
no such thing) sets ``probe=0``. ``probe=0`` in ``--model_args`` turns it off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.profiling.single_stream import StreamSample

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

    from medmoe_lm_eval.harness.backends.base import Backend
    from medmoe_lm_eval.harness.routing.router import Router
    from medmoe_lm_eval.profiling.profiler import Profiler

#: prompts measured per task by default (after one warm-up): a few seconds on a real model. Six is
#: the fewest whose [min, max] covers the true median with >= 95% (1 - 2/2**6 = 96.9%; five: 93.8%),
#: so the latency interval the ranking uses is a real 95% one (analysis.latency)
DEFAULT_PROMPTS = 6
#: what a free-text answer to a multiple-choice question may run to
MC_GEN_KWARGS: dict[str, Any] = {"until": ["\n\n", "\nQuestion:"], "max_gen_toks": 16, "do_sample": False}


def parse_prompts(value: int | str | None, default: int = DEFAULT_PROMPTS) -> int:
    """``probe`` from ``--model_args`` (a string there): prompts per task, 0 turns the probe off."""
    from medmoe_lm_eval.harness.config import ConfigError

    if value is None or value == "":
        return default
    try:
        n = int(str(value))
    except ValueError:
        raise ConfigError("--model_args", "probe", f"'{value}' is not a whole number", "pass probe=<prompts per task>, or probe=0 to turn it off") from None
    if n < 0:
        raise ConfigError("--model_args", "probe", f"{n} is negative", "pass probe=<prompts per task>, or probe=0 to turn it off")
    return n


def probe_prompts(rtype: str, requests: list[Instance], n: int) -> dict[str, list[tuple[Any, str, dict[str, Any]]]]:
    """Per task, the first ``n + 1`` distinct documents' ``(doc_id, prompt, gen_kwargs)`` (1 warm-up)."""
    out: dict[str, list[tuple[Any, str, dict[str, Any]]]] = {}
    seen: set[tuple[str, Any]] = set()
    if rtype == "loglikelihood_rolling":
        return out
    for req in requests:
        key = (req.task_name, req.doc_id)
        chosen = out.setdefault(req.task_name, [])
        if key in seen or len(chosen) > n:
            continue
        seen.add(key)
        prompt, kwargs = (req.args[0], dict(req.args[1])) if rtype == "generate_until" else (req.args[0], dict(MC_GEN_KWARGS))
        chosen.append((req.doc_id, prompt, kwargs))
    return out


class ServingProbe:
    """Runs the probe once per task, through the same router and experts as the evaluation."""

    def __init__(self, router: Router, get_backend: Callable[[str], Backend], profiler: Profiler, prompts: int) -> None:
        self.router = router
        self.get_backend = get_backend
        self.profiler = profiler
        self.prompts = prompts
        self.done: set[str] = set()

    @property
    def active(self) -> bool:
        return self.prompts > 0 and self.profiler.enabled

    def served(self, rtype: str, requests: list[Instance]) -> None:
        """After the model answered ``requests``: count them as served now, then probe new tasks."""
        self.profiler.note_served(rtype, [(r.task_name, r.doc_id) for r in requests])
        self.run(rtype, requests)

    def note_cache(self, cache_hook: Any) -> None:
        """Tell the profile whether lm-eval's ``--use_cache`` was attached (its hook has a database)."""
        db = getattr(cache_hook, "dbdict", None)
        if db is not None:
            self.profiler.note_cache(getattr(db, "filename", None))

    def run(self, rtype: str, requests: list[Instance]) -> None:
        """Probe each task of ``requests`` not probed yet in this run."""
        if not self.active:
            return
        for task, items in probe_prompts(rtype, requests, self.prompts).items():
            if task in self.done or not items:
                continue
            self.done.add(task)
            began = time.perf_counter()
            try:
                self.one(task, items[0])  # warm-up: caches, allocator, lazy kernels
                measured = items[1:] or items[:1]  # a one-document task measures its only prompt again
                samples = [self.one(task, item) for item in measured]
                self.profiler.add_single_stream(task, samples, warmup=1, probe_s=time.perf_counter() - began)
            except Exception as exc:  # a measurement never fails the evaluation; the profile says why it is missing
                self.profiler.note(f"single-stream probe of {task} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def one(self, task: str, item: tuple[Any, str, dict[str, Any]]) -> StreamSample:
        """One request alone: route, then stream the top expert's answer."""
        doc_id, prompt, gen_kwargs = item
        arrived = time.perf_counter()
        (route,) = self.router.route([prompt], [task], [(task, doc_id)])
        router_s = time.perf_counter() - arrived
        backend = self.get_backend(route.top)  # a load here is outside the timed window
        started = time.perf_counter()
        first: float | None = None
        text = ""
        for piece in backend.stream(prompt, gen_kwargs):
            if piece and first is None:
                first = time.perf_counter()
            text += piece
        done = time.perf_counter()
        return StreamSample(
            task=task,
            expert=route.top,
            router_s=router_s,
            ttft_s=router_s + (first - started) if first is not None else None,
            e2e_s=router_s + (done - started),
            output_tokens=backend.count_tokens(text) if text else 0,
            streamed=type(backend).streams,
            start_s=started - router_s,
            device=self.profiler.expert_device(route.top),
        )

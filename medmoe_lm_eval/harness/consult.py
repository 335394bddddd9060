"""Live consultation: one question through a candidate's router and its chosen expert.

Shared by ``medmoe ask`` (terminal) and the leaderboard's Consult page. Experts load only when
a question is routed to them and stay loaded between questions; browsing never loads one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from medmoe_lm_eval.harness.config import AdapterConfig, load_adapter
from medmoe_lm_eval.harness.pool import ExpertPool
from medmoe_lm_eval.harness.routing.router import Route, Router
from medmoe_lm_eval.profiling.profiler import Profiler

PROMPT = "Question: {question}\nAnswer:"
STOPS = ["\n\n", "\nQuestion:"]


class EmptyQuestion(ValueError):
    """Nothing to route: an empty or whitespace-only question."""


@dataclass
class Decision:
    """The router's view of one question."""

    question: str
    route: Route
    gate: dict[str, float]  # every expert's weight in the final mixture (0 when not activated)
    router_probs: dict[str, float]  # p(expert | question) before top-k, for routed experts
    routing_ms: float
    shared: str | None = None

    def role(self, expert: str) -> str:
        """``top``, ``shared``, ``routed`` (activated by top-k) or ``""`` (not activated)."""
        if expert == self.route.top:
            return "top"
        if expert == self.shared:
            return "shared"
        return "routed" if expert in self.route.experts else ""


@dataclass
class Answer:
    text: str = ""
    expert: str = ""
    truncated: bool = False
    generation_s: float = 0.0
    tokens: int = 0
    load_s: float = 0.0  # seconds spent loading the expert for this answer (0 when it was resident)
    notes: list[str] = field(default_factory=list)


class Consultant:
    """A candidate ready to answer questions, loading experts on first use."""

    def __init__(self, adapter: str | AdapterConfig, device: str | None = None, max_new_tokens: int = 128) -> None:
        self.cfg = adapter if isinstance(adapter, AdapterConfig) else load_adapter(adapter)
        self.router = Router(self.cfg)
        self.pool = ExpertPool(self.cfg.experts, Profiler(enabled=False), self.cfg.memory.max_resident, device)
        self.max_new_tokens = max_new_tokens

    def decide(self, question: str, task: str | None = None) -> Decision:
        if not question or not question.strip():
            raise EmptyQuestion("empty question; fix: type a question")
        started = time.perf_counter()
        (route,) = self.router.route([question], [task])
        routing_ms = 1000 * (time.perf_counter() - started)
        gate = {e.name: 0.0 for e in self.cfg.experts}
        gate.update(dict(zip(route.experts, route.weights)))
        by_domain = self.router.by_domain
        probs = {by_domain[d]: p for d, p in route.probs.items() if d in by_domain}
        shared = self.cfg.shared_expert.name if self.cfg.shared_expert else None
        return Decision(question, route, gate, probs, routing_ms, shared)

    @property
    def notes(self) -> list[str]:
        """What the config made the router change (weights normalised, say)."""
        return list(self.router.notes)

    def answer(self, decision: Decision, max_new_tokens: int | None = None) -> Iterator[tuple[str, Answer]]:
        """Yield ``(piece, answer so far)`` as the top expert generates; loads it if needed."""
        new_tokens = max_new_tokens or self.max_new_tokens
        resident = decision.route.top in self.pool.resident
        started = time.perf_counter()
        backend = self.pool.get(decision.route.top)
        load_s = 0.0 if resident else time.perf_counter() - started
        prompt, truncated = backend.fit_prompt(PROMPT.format(question=decision.question.strip()), new_tokens)
        answer = Answer(expert=decision.route.top, truncated=truncated, load_s=load_s)
        if truncated:
            kept = max((backend.max_length or 0) - new_tokens, 1)
            answer.notes.append(
                f"question truncated to its last {kept} tokens: expert '{answer.expert}' has a {backend.max_length}-token window and {new_tokens} are kept for the answer"
            )
        started = time.perf_counter()
        for piece in backend.stream(prompt, {"until": STOPS, "max_gen_toks": new_tokens, "do_sample": False}):
            answer.text += piece
            answer.generation_s = time.perf_counter() - started
            yield piece, answer
        answer.generation_s = time.perf_counter() - started
        answer.tokens = backend.count_tokens(answer.text) if answer.text else 0
        yield "", answer

    def close(self) -> None:
        self.pool.close()

"""Which experts served each request, written next to lm-eval's results.

Users need to see which experts fired, where the router disagreed with the task's domain and
what that cost; so every decision is one JSONL row (``task, doc_id, request_type, experts,
weights, domain, routed_domain, router_ms, text, fallback``; ``fallback`` says the router
was unsure and the fallback expert answered) and a per-task summary goes into
``results["config"]["medmoe"]["routing"]``. Rows are appended as they are made, so an
interrupted run keeps the decisions it had already taken.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

TEXT_CHARS = 200


@dataclass(frozen=True)
class RoutingRecord:
    task: str | None
    doc_id: int | None
    request_type: str
    experts: list[str]
    weights: list[float]
    domain: str | None
    routed_domain: str | None
    router_ms: float
    text: str
    #: the router was unsure and the fallback expert answered instead of a guess
    fallback: bool = False


class RoutingLog:
    """Per-task counters in memory plus an optional JSONL file of every decision."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self._requests: Counter[str] = Counter()
        self._top: dict[str, Counter[str]] = defaultdict(Counter)
        self._agree: Counter[str] = Counter()
        self._judged: Counter[str] = Counter()
        self._domain: dict[str, str | None] = {}
        self._fallback: Counter[str] = Counter()

    def add(self, records: Sequence[RoutingRecord]) -> None:
        for rec in records:
            task = rec.task or "(unknown)"
            self._requests[task] += 1
            self._top[task][rec.experts[0]] += 1
            self._domain.setdefault(task, rec.domain)
            self._fallback[task] += rec.fallback
            if rec.domain is not None and rec.routed_domain is not None:
                self._judged[task] += 1
                self._agree[task] += rec.domain == rec.routed_domain
        if self.path is not None and records:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records)
            self._fh.flush()

    def summary(self) -> dict[str, Any]:
        per_task = {}
        for task, n in self._requests.items():
            per_task[task] = {
                "requests": n,
                "domain": self._domain.get(task),
                "share": {e: c / n for e, c in sorted(self._top[task].items())},
                "agreement": (self._agree[task] / self._judged[task]) if self._judged[task] else None,
                "fallbacks": self._fallback[task],
            }
        return per_task

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def truncate_text(text: str) -> str:
    return text[:TEXT_CHARS]

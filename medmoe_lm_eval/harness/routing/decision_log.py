"""Which experts served each request, written next to lm-eval's results.

Every decision is one :class:`~medmoe_lm_eval.schema.routing_row.RoutingRow` appended to a JSONL
file as it is made (an interrupted run keeps the decisions it had already taken), and a per-task
summary (:class:`~medmoe_lm_eval.schema.run_record.TaskRouting`) goes into the run record's
``routing.per_task``. The layout of both lives in :mod:`medmoe_lm_eval.schema`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from medmoe_lm_eval.schema.routing_row import RoutingRow
from medmoe_lm_eval.schema.run_record import TaskRouting

TEXT_CHARS = 200


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

    def add(self, records: Sequence[RoutingRow]) -> None:
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
            self._fh.writelines(r.to_line() + "\n" for r in records)
            self._fh.flush()

    def summary(self) -> dict[str, TaskRouting]:
        """Per task: requests, the task's domain, each top expert's share, agreement, fallbacks."""
        return {
            task: TaskRouting(
                requests=n,
                domain=self._domain.get(task),
                share={e: c / n for e, c in sorted(self._top[task].items())},
                agreement=(self._agree[task] / self._judged[task]) if self._judged[task] else None,
                fallbacks=self._fallback[task],
            )
            for task, n in self._requests.items()
        }

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def truncate_text(text: str) -> str:
    return text[:TEXT_CHARS]

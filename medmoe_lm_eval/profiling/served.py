"""What this run served itself, and what came from lm-eval's cache.

With ``--use_cache``, lm-eval wraps the model in ``CachingLM``, which answers every request it
finds in its sqlite file and passes only the rest on: the model never sees a cached request.
So the profiler counts what reached the model, per task and request type: unique lm-eval
requests (an ``Instance``, however many experts it went to) and the distinct documents they
belong to. Requests/s, joules per request and joules per correct answer are over these only.

The share that came from the cache is then known by comparison with what the task evaluated,
the effective ``n-samples`` of the results file: a document none of whose requests reached the
model was answered from the cache. That comparison needs the results file, so it is made where
both are read (:func:`cache_share`); the profile itself says whether a cache was attached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ServedLedger:
    """Unique requests and documents that reached the model, per task and request type."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], int] = {}
        self._docs: dict[str, set[Any]] = {}
        self.cache_file: str | None = None
        self.cache_attached = False

    def add(self, request_type: str, keys: Iterable[tuple[str | None, Any]]) -> None:
        """One call of the model: ``keys`` are ``(task, doc_id)`` of each request, in order."""
        for task, doc_id in keys:
            name = "(none)" if task is None else str(task)
            self._requests[(name, request_type)] = self._requests.get((name, request_type), 0) + 1
            self._docs.setdefault(name, set()).add(doc_id)

    def note_cache(self, filename: str | None) -> None:
        """lm-eval attached its request cache (``--use_cache``): counts exclude cached requests."""
        self.cache_attached = True
        self.cache_file = filename

    @property
    def declared(self) -> bool:
        return bool(self._requests)

    def requests(self, *, task: str | None = None, request_type: str | None = None) -> int:
        return sum(n for (t, r), n in self._requests.items() if (task is None or t == task) and (request_type is None or r == request_type))

    def docs(self, task: str) -> int:
        return len(self._docs.get(task, ()))

    def tasks(self) -> list[str]:
        return list(self._docs)

    def report(self) -> dict[str, Any]:
        """Totals; per task, ``requests`` and ``docs`` sit in the profile's task entries."""
        return {
            "requests": self.requests(),
            "cache": {"attached": self.cache_attached, "file": self.cache_file},
        }


def _task_entry(profile: Mapping[str, Any] | None, task: str) -> Mapping[str, Any] | None:
    if not profile or profile.get("enabled") is False:
        return None
    entry = (profile.get("tasks") or {}).get(task)
    return entry if isinstance(entry, Mapping) else None


def docs_served(profile: Mapping[str, Any] | None, task: str) -> int | None:
    """Documents of ``task`` the model answered itself; ``None`` for a profile that did not count them."""
    if not profile or profile.get("enabled") is False or profile.get("served") is None:
        return None
    entry = _task_entry(profile, task)
    try:
        return int(entry.get("docs") or 0) if entry is not None else 0
    except (TypeError, ValueError, OverflowError):  # a profile from elsewhere: no usable count
        return None


def cache_share(profile: Mapping[str, Any] | None, task: str, n_docs: float) -> float | None:
    """Share of ``task``'s ``n_docs`` evaluated documents answered from the cache (0 = all served now).

    ``None`` when the profile did not count documents (written before this was measured) or
    ``n_docs`` is unknown.
    """
    served = docs_served(profile, task)
    if served is None or not n_docs or n_docs != n_docs or n_docs <= 0:
        return None
    return max(0.0, 1.0 - served / float(n_docs))


def energy_per_correct(profile: Mapping[str, Any] | None, task: str, accuracy: float, n_docs: float) -> float | None:
    """Joules per correct answer on ``task``, over the documents served in this run only.

    The task's energy is that of the batches this run served, so the correct answers it buys
    are the served documents times the accuracy (exact when nothing came from the cache; with
    a cache, the task's accuracy stands in for that of the served subset). ``None`` when energy
    was not measured, nothing was served or nothing was answered correctly.
    """
    entry = _task_entry(profile, task)
    joules = entry.get("energy_j") if entry is not None else None
    if joules is None or accuracy is None or accuracy != accuracy:
        return None
    served = docs_served(profile, task)
    docs = float(n_docs) if served is None else float(served)
    n_correct = accuracy * docs if docs == docs else 0.0
    if n_correct <= 0:
        return None
    return float(joules) / n_correct

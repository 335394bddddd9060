"""Serving one request type's plan: experts that share no hardware work at the same time.

The model routes every request, then each expert serves its share. Experts are grouped by where
they run (a remote endpoint, a CUDA device, the CPU; ``ExpertPool.placement``). Inside a group
experts take turns, as they must share the device; groups share nothing, so each gets its own
thread and they serve at once. Threads are enough: the work happens in servers, CUDA kernels and
native code, and Python only waits for it.

The threads only run backend calls. Everything that decides the results happens on the calling
thread in a fixed order: chunks are formed before any thread starts, each expert sees exactly
the chunks it would see when served alone, and the caller fuses answers per request by the
route's own expert order. So a concurrent run gives the same numbers, the same routing log and
the same output order as a sequential one; only the wall time changes.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

#: what one expert's serving yields: the request indices of a chunk and the backend's answers
Chunks = Iterator[tuple[list[int], list[Any]]]


@dataclass(frozen=True)
class Served:
    """One finished backend call: expert ``expert`` answered requests ``indices`` with ``outputs``."""

    expert: str
    indices: list[int]
    outputs: list[Any]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


def placement_groups(names: Sequence[str], placement: Callable[[str], str]) -> list[list[str]]:
    """``names`` grouped by placement, groups in order of first appearance, order kept inside."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(placement(name), []).append(name)
    return list(groups.values())


def serve(groups: list[list[str]], serve_expert: Callable[[str], Chunks], concurrent: bool = True) -> Iterator[Served]:
    """Every expert's chunks as they finish; groups on their own threads when ``concurrent``.

    A failure in any group is raised here, after the other groups have stopped at the end of
    their current call (a call in flight cannot be cancelled).
    """
    if not concurrent or len(groups) <= 1:
        for group in groups:
            for name in group:
                for indices, outputs in serve_expert(name):
                    yield Served(name, indices, outputs)
        return
    results: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def work(group: list[str]) -> None:
        try:
            for name in group:
                for indices, outputs in serve_expert(name):
                    results.put(Served(name, indices, outputs))
                    if stop.is_set():
                        return
        except BaseException as exc:  # handed to the calling thread, which raises it
            results.put(_Failed(exc))
        finally:
            results.put(_DONE)

    threads = [threading.Thread(target=work, args=(g,), name=f"medmoe-serve-{g[0]}", daemon=True) for g in groups]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = results.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, _Failed):
                raise item.error
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _chars(request: Instance) -> int:
    return sum(len(a) for a in request.args if isinstance(a, str))


def chunks(idxs: list[int], requests: list[Instance], size: int) -> Iterator[tuple[str | None, list[int]]]:
    """Per task (so per-task figures are exact), longest documents first, ``size`` documents per chunk.

    Requests of one document stay together: HFLM scores the answer options of a multiple-choice
    question in one forward pass only if they arrive together.
    """
    docs: dict[str | None, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in idxs:
        docs[requests[i].task_name][requests[i].doc_id].append(i)
    for task, by_doc in docs.items():
        ordered = sorted(by_doc.values(), key=lambda members: -max(_chars(requests[i]) for i in members))
        for start in range(0, len(ordered), max(1, size)):
            yield task, [i for members in ordered[start : start + size] for i in members]

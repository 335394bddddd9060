"""A background thread that calls one sampling function at a fixed interval.

It takes a sample synchronously when it starts and when it stops, so a window shorter than
the interval still has two readings, and it measures its own CPU time (``time.thread_time``
inside the thread) so the cost of profiling is itself a reported figure. Errors never
propagate: each distinct message is kept once, with a count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Tick = Callable[[float, list[str]], None]
MAX_DISTINCT_ERRORS = 20


class Sampler:
    """Calls ``tick(perf_counter_now, errors)`` every ``interval_s`` between start and stop."""

    def __init__(self, interval_s: float, tick: Tick, name: str = "medmoe-profiler") -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = interval_s
        self.tick = tick
        self.name = name
        self.samples = 0
        self.cpu_s = 0.0  #: CPU seconds spent sampling, in the thread and in the start/stop samples
        self._errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def errors(self) -> list[str]:
        return [msg if n == 1 else f"{msg} (x{n})" for msg, n in self._errors.items()]

    def start(self) -> None:
        if self._thread is not None:
            return
        self.sample_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread, then take the closing sample. Safe if never started."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self.sample_once()

    def sample_once(self) -> None:
        cpu0 = time.thread_time()
        found: list[str] = []
        try:
            self.tick(time.perf_counter(), found)
        except Exception as exc:  # a broken reading must never end the evaluation
            found.append(f"sampler: {exc.__class__.__name__}: {exc}")
        for msg in found:
            if msg in self._errors or len(self._errors) < MAX_DISTINCT_ERRORS:
                self._errors[msg] = self._errors.get(msg, 0) + 1
        self.samples += 1
        self.cpu_s += time.thread_time() - cpu0

    def _run(self) -> None:
        next_at = time.perf_counter() + self.interval_s
        while not self._stop.wait(max(0.0, next_at - time.perf_counter())):
            self.sample_once()
            next_at = max(next_at + self.interval_s, time.perf_counter())

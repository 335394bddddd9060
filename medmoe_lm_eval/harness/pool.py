"""Expert residency: each expert loads once per run, and at most ``max_resident`` at a time.

lm-eval hands the model every request of a type in one call, so the model groups requests by
expert and asks the pool for one expert at a time. Without a limit every expert stays loaded
(one load each per run); with ``memory.max_resident`` the least recently used expert is closed
before another loads, so a small GPU can evaluate a large mixture sequentially. Expert entries over
the same local model with the same settings (one model answering two domains) share one load.

Experts on different devices or servers may be served from several threads at once
(``scheduler``). A thread holds an expert through :meth:`ExpertPool.lease`: at most
``max_resident`` leases exist at a time, and an expert under lease is never evicted, so the
residency limit holds however many threads ask.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from medmoe_lm_eval.devices import DeviceError, resolve_device
from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.batching import BatchSetting

log = logging.getLogger(__name__)


def _load_key(spec: Any) -> dict[str, Any]:
    """What decides how an expert is loaded: everything in its entry but its name and domain."""
    return spec.model_dump(exclude={"name", "domain"})


class ExpertPool:
    """Creates backends lazily and keeps the resident set within the limit."""

    def __init__(
        self, experts: list[Any], profiler: Any, max_resident: int | None = None, device: str | None = None, batch: BatchSetting | None = None
    ) -> None:
        self.specs = {e.name: e for e in experts}
        self.profiler = profiler
        self.max_resident = max_resident
        self.device_override = device
        self.batch = batch  # the command line's batch size; None keeps each adapter's own
        self.resident: OrderedDict[str, Backend] = OrderedDict()
        self.load_counts: dict[str, int] = {name: 0 for name in self.specs}
        self.infos: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._in_use: Counter[str] = Counter()
        self._leases = threading.BoundedSemaphore(max_resident) if max_resident else None

    def device_for(self, spec: Any) -> str:
        if spec.backend == "remote":
            return "remote"
        wanted = spec.device if spec.device != "auto" else (self.device_override or "auto")
        try:
            return resolve_device(wanted)
        except DeviceError as exc:
            raise BackendError(f"expert '{spec.name}': {exc}") from None

    def placement(self, name: str) -> str:
        """Where expert ``name`` runs: experts with different placements share no hardware."""
        spec = self.specs[name]
        if spec.backend == "remote":
            return f"remote:{str(spec.base_url).rstrip('/').removesuffix('/v1')}"
        if spec.backend == "gguf" and int(spec.n_gpu_layers) == 0:
            return "cpu"  # llama.cpp computes on the CPU whatever the device says
        return self.device_for(spec)

    def get(self, name: str) -> Backend:
        """The loaded backend of expert ``name``, loading (and evicting) as needed."""
        with self._lock:
            if name in self.resident:
                self.resident.move_to_end(name)
                return self.resident[name]
            twin = self._twin(name)
            if twin is not None:  # the same model loaded with the same settings: one copy serves both
                self.resident[name], self.infos[name] = self.resident[twin], self.infos[twin]
                return self.resident[name]
            while self.max_resident is not None and self._loaded() >= self.max_resident:
                idle = [n for n in self.resident if not self._in_use[n]]
                if not idle:
                    break  # unreachable under lease(): fewer than max_resident experts are leased
                self.release(idle[0])
            spec = self.specs[name]
            backend = make_backend(spec, device=self.device_for(spec), batch=self.batch)
            try:
                with self.profiler.expert_load(name, device=backend.compute_device()):
                    backend.load()
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"expert '{name}': failed to load: {type(exc).__name__}: {exc}") from exc
            self.load_counts[name] += 1
            self.infos[name] = backend.info()
            self.resident[name] = backend
            return backend

    def _twin(self, name: str) -> str | None:
        """A resident expert whose backend can serve ``name`` too: the same local model loaded the
        same way, differing only in name and domain (a model answering two domains is two expert
        entries over one file). Loading it twice would double the mixture's memory figure for
        nothing. A remote expert is a connection, not a copy in memory: never shared."""
        spec = self.specs[name]
        if spec.backend == "remote":
            return None
        key = _load_key(spec)
        return next((n for n in self.resident if _load_key(self.specs[n]) == key), None)  # a remote entry's key differs: its backend

    def _loaded(self) -> int:
        """Backends in memory (twins count once)."""
        return len({id(b) for b in self.resident.values()})

    @contextmanager
    def lease(self, name: str) -> Iterator[Backend]:
        """Expert ``name`` loaded and kept resident until the ``with`` block ends."""
        with self._leases or nullcontext():
            with self._lock:
                backend = self.get(name)
                self._in_use[name] += 1
            try:
                yield backend
            finally:
                with self._lock:
                    self._in_use[name] -= 1

    def release(self, name: str) -> None:
        with self._lock:
            backend = self.resident.pop(name, None)
            if backend is None or any(other is backend for other in self.resident.values()):
                return  # not loaded, or still serving a twin
            self.profiler.note_backend_peak_rss(name, backend.peak_rss_bytes())
            backend.close()
            del backend
            gc.collect()
        log.info("released expert '%s' (residency limit %s)", name, self.max_resident)

    def order(self, names: list[str]) -> list[str]:
        """Serve resident experts first so a residency limit causes as few reloads as possible."""
        return sorted(names, key=lambda n: (n not in self.resident, names.index(n)))

    def note_memory(self) -> None:
        """Hand resident backends' own peak RSS (a server process, say) to the profiler."""
        for name, backend in self.resident.items():
            self.profiler.note_backend_peak_rss(name, backend.peak_rss_bytes())

    def close(self) -> None:
        for name in list(self.resident):
            self.release(name)

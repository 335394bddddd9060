"""Expert residency: each expert loads once per run, and at most ``max_resident`` at a time.

lm-eval hands the model every request of a type in one call, so the model groups requests by
expert and asks the pool for one expert at a time. Without a limit every expert stays loaded
(one load each per run); with ``memory.max_resident`` the least recently used expert is closed
before another loads, so a small GPU can evaluate a large mixture sequentially.
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from typing import Any

from medmoe_lm_eval.devices import DeviceError, resolve_device
from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.base import Backend, BackendError

log = logging.getLogger(__name__)


class ExpertPool:
    """Creates backends lazily and keeps the resident set within the limit."""

    def __init__(self, experts: list[Any], profiler: Any, max_resident: int | None = None, device: str | None = None) -> None:
        self.specs = {e.name: e for e in experts}
        self.profiler = profiler
        self.max_resident = max_resident
        self.device_override = device
        self.resident: OrderedDict[str, Backend] = OrderedDict()
        self.load_counts: dict[str, int] = {name: 0 for name in self.specs}
        self.infos: dict[str, dict[str, Any]] = {}

    def device_for(self, spec: Any) -> str:
        if spec.backend == "remote":
            return "remote"
        wanted = spec.device if spec.device != "auto" else (self.device_override or "auto")
        try:
            return resolve_device(wanted)
        except DeviceError as exc:
            raise BackendError(f"expert '{spec.name}': {exc}") from None

    def get(self, name: str) -> Backend:
        """The loaded backend of expert ``name``, loading (and evicting) as needed."""
        if name in self.resident:
            self.resident.move_to_end(name)
            return self.resident[name]
        while self.max_resident is not None and len(self.resident) >= self.max_resident:
            self.release(next(iter(self.resident)))
        spec = self.specs[name]
        backend = make_backend(spec, device=self.device_for(spec))
        with self.profiler.expert_load(name, device=backend.compute_device()):
            backend.load()
        self.load_counts[name] += 1
        self.infos[name] = backend.info()
        self.resident[name] = backend
        return backend

    def release(self, name: str) -> None:
        backend = self.resident.pop(name, None)
        if backend is None:
            return
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

"""Resident memory of this process and of backend processes (a llama.cpp or vLLM server).

Polling misses short spikes (an expert's weights are often copied once while loading), so on
Linux the peak also comes from the kernel's own high-water mark, ``VmHWM`` in
``/proc/<pid>/status``, which :func:`reset_peak_rss` rewinds to the current RSS when the
profiler starts. Where neither is available (another OS), the polled peak stands alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil


def reset_peak_rss() -> bool:
    """Rewind this process's ``VmHWM`` to its current RSS (Linux >= 4.0); ``False`` if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def kernel_peak_rss(pid: int | str = "self") -> int | None:
    """``VmHWM`` of a process in bytes, or ``None`` where the kernel does not expose it."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class RssWatch:
    """Peak RSS of this process and of registered external processes, in bytes."""

    peak_bytes: int = 0
    hwm_reset: bool = False
    external: dict[str, list[psutil.Process]] = field(default_factory=dict)
    external_peak_bytes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._self = psutil.Process()

    def start(self) -> None:
        if not self.hwm_reset:
            self.hwm_reset = reset_peak_rss()

    def add_process(self, expert: str, pid: int) -> None:
        """Watch ``pid`` too (raises ``psutil.NoSuchProcess`` if it is already gone)."""
        self.external.setdefault(expert, []).append(psutil.Process(pid))
        self.external_peak_bytes.setdefault(expert, 0)
        self.sample_external()

    def current_bytes(self) -> int:
        return int(self._self.memory_info().rss)

    def note_external_peak(self, expert: str, peak_bytes: int) -> None:
        self.external_peak_bytes[expert] = max(self.external_peak_bytes.get(expert, 0), peak_bytes)

    def sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self.current_bytes())
        if self.external:
            self.sample_external()

    def sample_external(self) -> None:
        """RSS of each expert's processes (summed), skipping ones that have exited."""
        for expert, procs in self.external.items():
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.external_peak_bytes[expert] = max(self.external_peak_bytes[expert], total)

    def finish(self) -> None:
        """Fold in the kernel's high-water marks (exact peaks, including spikes between polls)."""
        if self.hwm_reset:
            self.peak_bytes = max(self.peak_bytes, kernel_peak_rss() or 0)
        for expert, procs in self.external.items():
            if len(procs) == 1:  # a sum of per-process peaks would overstate a simultaneous peak
                self.external_peak_bytes[expert] = max(self.external_peak_bytes[expert], kernel_peak_rss(procs[0].pid) or 0)

    @property
    def peak_source(self) -> str:
        return "kernel_hwm+sampled" if self.hwm_reset else "sampled"

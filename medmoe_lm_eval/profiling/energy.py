"""Joules over time, from cumulative counters (NVML, RAPL) or from power readings.

Every source ends up as an :class:`EnergySeries`: cumulative joules at sample times. Asking
how much energy a batch used is then one interpolation, ``E(end) - E(start)``, done when the
report is built, so the hot path never reads a counter. Counters wrap (RAPL every few minutes
under load) and can restart (a driver reload); :func:`counter_delta` tells the two apart.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Where Linux exposes RAPL. A module attribute so a copy of the tree can be pointed at instead.
POWERCAP_ROOT = Path("/sys/class/powercap")


def counter_delta(prev: int, new: int, modulus: int) -> int:
    """How far a counter that wraps at ``modulus`` advanced from ``prev`` to ``new``.

    A smaller reading is a wrap when the wrapped distance is under half the range (samples
    are far more frequent than that); otherwise the counter restarted from zero.
    """
    if new >= prev:
        return new - prev
    wrapped = modulus - prev + new
    return wrapped if wrapped <= modulus // 2 else new


class EnergySeries:
    """Cumulative joules at ``perf_counter`` times; answers "energy between t0 and t1"."""

    def __init__(self) -> None:
        self._t = array("d")
        self._j = array("d")
        self._lock = threading.Lock()

    def add(self, t: float, joules: float) -> None:
        with self._lock:
            self._t.append(t)
            self._j.append(joules)

    def __len__(self) -> int:
        return len(self._t)

    @property
    def total(self) -> float:
        with self._lock:
            return self._j[-1] - self._j[0] if self._j else 0.0

    @property
    def span_s(self) -> float:
        with self._lock:
            return self._t[-1] - self._t[0] if self._t else 0.0

    def between(self, windows: Sequence[tuple[float, float]]) -> list[float]:
        """Joules spent in each ``(start, end)`` window, linearly interpolated between samples.

        Windows outside the sampled span get the part that overlaps it (often 0).
        """
        import numpy as np

        with self._lock:
            t = np.frombuffer(self._t, dtype=float).copy()
            j = np.frombuffer(self._j, dtype=float).copy()
        if t.size == 0 or not windows:
            return [0.0] * len(windows)
        w = np.asarray(windows, dtype=float).reshape(-1, 2)
        return [float(x) for x in np.interp(w[:, 1], t, j) - np.interp(w[:, 0], t, j)]


class CounterIntegrator:
    """Raw readings of one or more wrapping counters -> an :class:`EnergySeries`.

    ``unit_j`` converts counter units to joules (NVML: 1e-3, RAPL: 1e-6). After ``resume()``
    the next reading only sets a new baseline, so time while the profiler was stopped adds no
    energy.
    """

    def __init__(self, unit_j: float, moduli: Sequence[int]) -> None:
        self.unit_j = unit_j
        self.moduli = tuple(moduli)
        self.series = EnergySeries()
        self._prev: tuple[int, ...] | None = None
        self._joules = 0.0

    def resume(self) -> None:
        self._prev = None

    def feed(self, t: float, raw: Sequence[int]) -> None:
        raw = tuple(int(v) for v in raw)
        if self._prev is not None:
            self._joules += self.unit_j * sum(counter_delta(p, n, m) for p, n, m in zip(self._prev, raw, self.moduli, strict=True))
        self._prev = raw
        self.series.add(t, self._joules)


class PowerIntegrator:
    """Power readings (watts) -> an :class:`EnergySeries` by the trapezoid rule."""

    def __init__(self) -> None:
        self.series = EnergySeries()
        self._prev: tuple[float, float] | None = None
        self._joules = 0.0
        self._watt_seconds = 0.0
        self.peak_w: float | None = None

    def resume(self) -> None:
        self._prev = None

    def feed(self, t: float, watts: float) -> None:
        if self._prev is not None:
            t0, w0 = self._prev
            self._joules += 0.5 * (w0 + watts) * (t - t0)
        self._prev = (t, watts)
        self.peak_w = watts if self.peak_w is None else max(self.peak_w, watts)
        self.series.add(t, self._joules)


# -- RAPL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone counted towards CPU energy."""

    path: Path
    name: str
    max_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def _zone_name(path: Path) -> str:
    try:
        return (path / "name").read_text().strip()
    except OSError:
        return path.name


def rapl_zones(root: Path) -> list[Path]:
    """Zones to sum: each package, plus its DRAM subzone (DRAM is outside the package).

    Core/uncore subzones are inside the package and ``psys`` covers the packages, so counting
    them too would double the figure; ``psys`` is used only when no package zone exists.
    """
    top = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    packages = [p for p in top if _zone_name(p).startswith("package")]
    drams = [s for p in packages for s in sorted(p.glob(f"{p.name}:*")) if _zone_name(s) == "dram"]
    if packages:
        return packages + drams
    return [p for p in top if _zone_name(p) == "psys"]


class Rapl:
    """CPU energy from Linux RAPL counters (``energy_uj``, wrapping at ``max_energy_range_uj``)."""

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        self.zones = tuple(zones)
        self.integrator = CounterIntegrator(1e-6, [z.max_uj for z in self.zones])

    @classmethod
    def open(cls, root: Path | None = None) -> tuple[Rapl | None, str | None]:
        """The reader, or ``None`` and the reason (no powercap, no zones, unreadable counter)."""
        root = POWERCAP_ROOT if root is None else Path(root)
        if not root.is_dir():
            return None, f"{root} does not exist (RAPL is not exposed here, common in containers and VMs)"
        paths = rapl_zones(root)
        if not paths:
            return None, f"no RAPL package zone under {root}"
        zones = []
        for path in paths:
            try:
                zone = RaplZone(path, _zone_name(path), int((path / "max_energy_range_uj").read_text().strip()))
                zone.read_uj()
            except (OSError, ValueError) as exc:
                hint = " (reading needs root on kernels since 5.10)" if isinstance(exc, PermissionError) else ""
                return None, f"cannot read {path / 'energy_uj'}: {exc.__class__.__name__}: {exc}{hint}"
            zones.append(zone)
        return cls(zones), None

    def sample(self, t: float) -> None:
        self.integrator.feed(t, [z.read_uj() for z in self.zones])

    @property
    def series(self) -> EnergySeries:
        return self.integrator.series

    def describe(self) -> str:
        return "+".join(z.name for z in self.zones)

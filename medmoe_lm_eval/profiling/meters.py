"""Energy and memory meters, one per device an expert runs on.

A batch's joules must come from the device that did the work: NVML for an expert on a GPU,
RAPL for an expert on the CPU (a GGUF file with ``n_gpu_layers: 0`` on a GPU host runs on the
CPU, and the GPU's counter says nothing about it). So the profiler keeps one meter per device,
samples them all in its background thread, and asks each batch's own device for its energy.

Each meter can also measure the device's idle draw (:meth:`Meter.measure_idle`) before any
expert loads, so that what a candidate *adds* can be told apart from what the machine burns
anyway. Opening never raises: a meter that cannot read anything says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from medmoe_lm_eval.profiling.energy import CounterIntegrator, EnergySeries, PowerIntegrator, Rapl
from medmoe_lm_eval.profiling.nvml import ENERGY_MODULUS_MJ, NvmlProbe

#: the pseudo-device of an expert behind an HTTP server: its energy is the server's, not ours
REMOTE = "remote"


def device_key(device: str | None) -> str:
    """The meter a device reads: ``cuda:N`` (``cuda`` is ``cuda:0``), ``remote``, or ``cpu`` for the rest."""
    text = str(device or "cpu")
    if text.startswith("cuda"):
        return "cuda:0" if text == "cuda" else text
    return REMOTE if text == REMOTE else "cpu"


@dataclass(frozen=True)
class IdleReading:
    """A device's draw with no expert working, measured before the run."""

    watts: float | None
    seconds: float
    source: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"idle_w": self.watts, "idle_s": self.seconds, "idle_source": self.source, "idle_reason": self.reason}


NOT_MEASURED = IdleReading(None, 0.0, None, "idle power not measured (idle_s=0)")


class Meter:
    """Base meter: no readings. Subclasses fill the series and say what they read."""

    kind = "none"

    def __init__(self, device: str, reason: str | None = None) -> None:
        self.device = device
        self.reason = reason
        self.idle = NOT_MEASURED
        self.notes: list[str] = []

    # -- lifecycle / sampling -------------------------------------------------------------------
    def resume(self) -> None:
        """A new active window starts: time while stopped adds no energy."""

    def pause(self) -> None:
        """The profiler stopped."""

    def sample(self, now: float, pids: set[int], errors: list[str]) -> None:
        """One reading (background thread)."""

    def _raw(self, errors: list[str]) -> tuple[list[int] | None, float | None]:
        """Cumulative counters and instantaneous watts, for the idle window."""
        return None, None

    def _counter_setup(self) -> tuple[float, list[int]]:
        return 1.0, []

    # -- figures --------------------------------------------------------------------------------
    def energy(self) -> tuple[EnergySeries | None, str | None, str | None]:
        """The series to use, its source name, and why it is missing or degraded."""
        return None, None, self.reason

    def memory(self) -> dict[str, Any] | None:
        return None

    @property
    def readable(self) -> bool:
        """Whether this meter reads anything at all (no idle window is spent on one that does not)."""
        return False

    def measure_idle(self, seconds: float, interval_s: float) -> IdleReading:
        """Mean watts over ``seconds`` of readings every ``interval_s`` (counter first, else power)."""
        if seconds <= 0:
            return self.idle
        if not self.readable:
            self.idle = IdleReading(None, 0.0, None, f"idle power not measured: {self.reason}")
            return self.idle
        unit, moduli = self._counter_setup()
        counter, power = CounterIntegrator(unit, moduli), PowerIntegrator()
        errors: list[str] = []
        start = time.perf_counter()
        while True:
            now = time.perf_counter()
            raw, watts = self._raw(errors)
            if raw is not None:
                counter.feed(now, raw)
            if watts is not None:
                power.feed(now, watts)
            if now - start >= seconds:
                break
            time.sleep(min(interval_s, max(0.0, seconds - (now - start))))
        self.idle = _idle_from(counter.series, power.series, self.kind, errors, self.reason)
        return self.idle


def _idle_from(counter: EnergySeries, power: EnergySeries, kind: str, errors: list[str], reason: str | None) -> IdleReading:
    if len(counter) >= 2 and counter.total > 0 and counter.span_s > 0:
        return IdleReading(counter.total / counter.span_s, counter.span_s, f"{kind}_counter")
    if len(power) >= 2 and power.span_s > 0:
        return IdleReading(power.total / power.span_s, power.span_s, f"{kind}_power")
    why = "; ".join(errors) or reason or f"{kind} gave no usable reading over the idle window"
    return IdleReading(None, counter.span_s or power.span_s, None, why)


class NvmlMeter(Meter):
    """One GPU through NVML: energy counter (power integral as fallback) and memory used."""

    kind = "nvml"

    def __init__(self, device: str) -> None:
        probe, reason = NvmlProbe.open(device)
        super().__init__(device, reason)
        self.probe: NvmlProbe | None = probe
        self.info = probe.info() if probe is not None else None
        self.opened = probe is not None
        self.counter = CounterIntegrator(1e-3, [ENERGY_MODULUS_MJ])
        self.power = PowerIntegrator()
        self.peak: tuple[int, str] | None = None
        self._kept_notes: list[str] = []

    @property
    def readable(self) -> bool:
        return self.probe is not None

    def resume(self) -> None:
        if self.opened and self.probe is None:
            self.probe, _ = NvmlProbe.open(self.device)
        self.counter.resume()
        self.power.resume()

    def pause(self) -> None:
        if self.probe is not None:
            self._kept_notes.extend(self.probe.notes)
            self.probe.close()
            self.probe = None

    def all_notes(self) -> list[str]:
        current = self.probe.notes if self.probe is not None else []
        return list(dict.fromkeys(self._kept_notes + current))

    def sample(self, now: float, pids: set[int], errors: list[str]) -> None:
        if self.probe is None:
            return
        reading = self.probe.read(pids, errors)
        if reading.energy_mj is not None:
            self.counter.feed(now, [reading.energy_mj])
        if reading.power_w is not None:
            self.power.feed(now, reading.power_w)
        if reading.used_bytes is not None and (self.peak is None or reading.used_bytes > self.peak[0]):
            self.peak = (reading.used_bytes, reading.scope or "device")

    def _counter_setup(self) -> tuple[float, list[int]]:
        return 1e-3, [ENERGY_MODULUS_MJ]

    def _raw(self, errors: list[str]) -> tuple[list[int] | None, float | None]:
        if self.probe is None:
            return None, None
        reading = self.probe.read(set(), errors)
        return ([reading.energy_mj] if reading.energy_mj is not None else None), reading.power_w

    def energy(self) -> tuple[EnergySeries | None, str | None, str | None]:
        """NVML's counter is preferred; it updates only every 20-100 ms, so over a short run it
        may not move, and then (or on GPUs before Volta, which lack it) power is integrated."""
        if not self.opened:
            return None, None, f"nvml: {self.reason}"
        counter, power = self.counter.series, self.power.series
        if len(counter) >= 2 and counter.total > 0:
            return counter, "nvml_energy_counter", None
        why = "; ".join(self.all_notes()) or f"NVML energy counter did not advance over {counter.span_s:.3f} s (it updates every 20-100 ms)"
        if len(power) >= 2:
            return power, "nvml_power_integral", why
        return None, None, f"{why}; no NVML power readings either"

    def memory(self) -> dict[str, Any] | None:
        if self.peak is None:
            return None
        return {"nvml_peak_used_bytes": self.peak[0], "nvml_scope": self.peak[1], "source": "nvml"}


class RaplMeter(Meter):
    """The CPU package (and DRAM) through Linux RAPL counters."""

    kind = "rapl"

    def __init__(self) -> None:
        rapl, reason = Rapl.open()
        super().__init__("cpu", None if rapl is not None else f"rapl: {reason}")
        self.rapl: Rapl | None = rapl

    @property
    def readable(self) -> bool:
        return self.rapl is not None

    def resume(self) -> None:
        if self.rapl is not None:
            self.rapl.integrator.resume()

    def sample(self, now: float, pids: set[int], errors: list[str]) -> None:
        if self.rapl is None:
            return
        try:
            self.rapl.sample(now)
        except (OSError, ValueError) as exc:
            errors.append(f"rapl: {exc.__class__.__name__}: {exc}")

    def _counter_setup(self) -> tuple[float, list[int]]:
        return 1e-6, [z.max_uj for z in self.rapl.zones] if self.rapl is not None else []

    def _raw(self, errors: list[str]) -> tuple[list[int] | None, float | None]:
        if self.rapl is None:
            return None, None
        try:
            return [z.read_uj() for z in self.rapl.zones], None
        except (OSError, ValueError) as exc:
            errors.append(f"rapl: {exc.__class__.__name__}: {exc}")
            return None, None

    def energy(self) -> tuple[EnergySeries | None, str | None, str | None]:
        if self.rapl is None:
            return None, None, self.reason
        return self.rapl.series, "rapl", None

    def describe(self) -> str | None:
        return self.rapl.describe() if self.rapl is not None else None


def remote_meter() -> Meter:
    return Meter(REMOTE, "remote expert: its energy and memory are the server's, not measurable from this process")

"""The profiler every candidate runs under: latency, throughput, memory and energy.

``MedMoELM`` wraps each backend call in :meth:`Profiler.track` and each expert load in
:meth:`Profiler.expert_load`; a background :class:`~medmoe_lm_eval.profiling.sampler.Sampler`
polls memory, power and energy counters meanwhile, one meter per device an expert runs on
(:mod:`~medmoe_lm_eval.profiling.meters`). The report (:mod:`~medmoe_lm_eval.profiling.report`)
goes into lm-eval's ``results["config"]["medmoe_profile"]`` and, through ``write()``, into a
``profile_*.json`` beside the results. Full-precision models, quantized copies, GGUF files and
mixtures all go through this one class, which is what makes their rows comparable.

Two rules shape the code. The hot path costs microseconds: ``track`` only reads the clock
(after a CUDA synchronize on a GPU, so asynchronous kernels are counted) and appends a record;
energy per batch is interpolated from the sampled series of the batch's own device when the
report is built. And profiling never fails an evaluation: a missing NVML library, a missing
GPU, a counter the GPU lacks or an unreadable RAPL file each degrade to what can still be
measured, and the profile names what was missing and why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medmoe_lm_eval.devices import resolve_device
from medmoe_lm_eval.jsonio import write_json_exclusive
from medmoe_lm_eval.profiling import ProfileError
from medmoe_lm_eval.profiling.memory import RssWatch
from medmoe_lm_eval.profiling.meters import Meter, NvmlMeter, RaplMeter, device_key, remote_meter
from medmoe_lm_eval.profiling.report import build_report
from medmoe_lm_eval.profiling.sampler import Sampler
from medmoe_lm_eval.profiling.served import ServedLedger
from medmoe_lm_eval.profiling.single_stream import StreamSample
from medmoe_lm_eval.profiling.snapshot import ProfilerSnapshot
from medmoe_lm_eval.profiling.stats import BatchRecord
from medmoe_lm_eval.schema.profile import disabled

__all__ = ["BatchRecord", "ProfileError", "Profiler", "ProfilerSnapshot", "StreamSample"]


def _no_sync() -> None:
    """The clock needs no barrier on CPU: the call has finished when it returns."""


def _torch_cuda(device: str) -> Any | None:
    """The ``torch`` module when ``device`` is a usable CUDA device; ``None`` otherwise.

    Only called for ``cuda`` devices, so a ``cpu`` run never touches CUDA through the profiler.
    """
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


class Profiler:
    """Times backend calls and expert loads and samples memory and energy in the background.

    ``interval_ms`` is the sampling period (NVML's counters update every 20-100 ms, so faster
    gains nothing). ``idle_s`` seconds of each device's draw are measured before the run (and
    before an expert first loads on a device not seen yet) and subtracted from batch energies;
    0 measures nothing and subtracts nothing. With ``enabled=False`` every method is a cheap
    no-op and ``report()`` returns the disabled profile (``schema.profile.disabled``).
    """

    def __init__(self, interval_ms: float = 100.0, device: str = "cpu", enabled: bool = True, idle_s: float = 0.0) -> None:
        self.enabled = bool(enabled)
        self.interval_ms = float(interval_ms)
        self.device = device or "auto"
        self.idle_s = max(0.0, float(idle_s))
        if not self.enabled:
            return
        self._records: list[BatchRecord] = []
        self._failed_batches = 0
        self._loads: dict[str, list[float]] = {}
        self._router: list[tuple[float, int]] = []
        self._truncated: dict[tuple[str | None, str], int] = {}
        self._notes: list[str] = []
        self._rss = RssWatch()
        self._pids = {os.getpid()}
        self._sampler = Sampler(self.interval_ms / 1000.0, self._tick)
        self._sync: Callable[[], None] = _no_sync
        self._torch: Any | None = None
        self._torch_peaks: dict[str, int] | None = None
        self._meters: dict[str, Meter] = {}
        self._expert_devices: dict[str, str] = {}
        self._idle_done: set[str] = set()
        self._served = ServedLedger()
        self._streams: dict[str, tuple[list[StreamSample], int, float | None]] = {}
        self._started_at: str | None = None
        self._run_t0: float | None = None
        self._active_s = 0.0
        self._opened = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start sampling (idempotent). Call before the first expert loads."""
        if not self.enabled or self._run_t0 is not None:
            return
        if not self._opened:
            self._open()
        for meter in list(self._meters.values()):
            meter.resume()
        self._rss.start()
        self._run_t0 = time.perf_counter()
        self._sampler.start()

    def stop(self) -> None:
        """Stop sampling and join the thread (idempotent; safe if never started)."""
        if not self.enabled or self._run_t0 is None:
            return
        try:
            self._sampler.stop()
        finally:
            self._active_s += time.perf_counter() - self._run_t0
            self._run_t0 = None
            self._rss.finish()
            self._read_torch_peaks()
            for meter in list(self._meters.values()):
                meter.pause()

    def _open(self) -> None:
        """First start: pick the device and the clock, open the meters, measure the idle draw.

        RAPL is always opened (a CPU expert may join a GPU run), but its idle draw is measured
        only if the run's device is the CPU or when a CPU expert first loads.
        """
        self._opened = True
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.device = resolve_device(self.device, strict=False)
        self._meters["cpu"] = RaplMeter()
        if self.device.startswith("cuda"):
            self._open_torch()
        self._measured_idle(self._meter(self.device))

    def _meter(self, device: str) -> Meter:
        """The meter of ``device``, opened on first use."""
        key = device_key(device)
        meter = self._meters.get(key)
        if meter is None:
            meter = remote_meter() if key == "remote" else NvmlMeter(key) if key.startswith("cuda") else RaplMeter()
            if self._run_t0 is not None:
                meter.resume()
            self._meters[key] = meter
        return meter

    def _measured_idle(self, meter: Meter) -> None:
        """Measure ``meter``'s idle draw once, before any expert of its device loads."""
        if self.idle_s > 0 and meter.device not in self._idle_done and meter.device != "remote":
            self._idle_done.add(meter.device)
            meter.measure_idle(self.idle_s, self.interval_ms / 1000.0)

    def _open_torch(self) -> None:
        """CUDA clock and peaks through torch, when it has CUDA.

        The synchronize is skipped until CUDA is initialised, so a backend that never uses
        torch's CUDA (llama.cpp) does not get a CUDA context from the profiler.
        """
        torch = _torch_cuda(self.device)
        if torch is None:
            return
        self._torch = torch
        device = self.device

        def sync() -> None:
            if torch.cuda.is_initialized():
                torch.cuda.synchronize(device)

        self._sync = sync
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats(self.device)

    def _read_torch_peaks(self) -> None:
        torch = self._torch
        if torch is None or not torch.cuda.is_initialized():
            return
        try:
            self._torch_peaks = {
                "torch_max_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                "torch_max_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
            }
        except Exception as exc:  # a lost device must not fail the run at its very end
            self._notes.append(f"torch.cuda memory stats: {exc.__class__.__name__}: {exc}")

    # -- sampling (background thread) -----------------------------------------------------------
    def _tick(self, now: float, errors: list[str]) -> None:
        self._rss.sample()
        for meter in list(self._meters.values()):
            meter.sample(now, self._pids, errors)

    # -- what the model calls -------------------------------------------------------------------
    @contextmanager
    def expert_load(self, expert: str, device: str | None = None) -> Iterator[None]:
        """Time one load of ``expert`` (an expert evicted and reloaded is timed each time).

        ``device`` is where the expert computes (``Backend.compute_device()``): its batches'
        energy and memory are read from that device's meter. Without it, the profiler's device.
        """
        if not self.enabled:
            yield
            return
        if device is not None:
            self._expert_devices[expert] = device_key(device)
            if self._opened:
                self._measured_idle(self._meter(device))
        t0 = time.perf_counter()
        yield
        self._sync()
        self._loads.setdefault(expert, []).append(time.perf_counter() - t0)

    def expert_device(self, expert: str) -> str:
        """The meter key of ``expert``'s device; the run's own device for one never declared."""
        return self._expert_devices.get(expert) or device_key(self.device)

    @contextmanager
    def track(self, *, expert: str, request_type: str, task: str | None, n_requests: int, prompt_tokens: int) -> Iterator[BatchRecord]:
        """One backend call on one batch of ``n_requests`` expert calls. The caller sets
        ``rec.generated_tokens`` after generation."""
        rec = BatchRecord(expert, request_type, task, n_requests, prompt_tokens)
        if not self.enabled:
            yield rec
            return
        rec.device = self.expert_device(expert)
        self._sync()
        rec.start_s = time.perf_counter()
        try:
            yield rec
        except BaseException:
            self._failed_batches += 1
            raise
        self._sync()
        rec.end_s = time.perf_counter()
        self._records.append(rec)

    def note_served(self, request_type: str, keys: Iterable[tuple[str | None, Any]]) -> None:
        """The unique lm-eval requests one model call answered, as ``(task, doc_id)`` pairs."""
        if self.enabled:
            self._served.add(request_type, keys)

    def note_cache(self, filename: str | None) -> None:
        """lm-eval's ``--use_cache`` is on: cached requests never reach the model."""
        if self.enabled:
            self._served.note_cache(filename)

    def add_single_stream(self, task: str, samples: Sequence[StreamSample], warmup: int, probe_s: float | None = None) -> None:
        """The serving probe's measurements of one task, and the wall time it spent (see :mod:`.single_stream`)."""
        if self.enabled:
            self._streams[task] = (list(samples), int(warmup), probe_s)

    def note(self, message: str) -> None:
        """Something the profile should say (a figure that could not be measured, and why)."""
        if self.enabled:
            self._notes.append(message)

    def add_router_time(self, seconds: float, n_queries: int) -> None:
        """Time the router took to score ``n_queries`` queries in one call."""
        if self.enabled and n_queries > 0:
            self._router.append((float(seconds), int(n_queries)))

    def note_truncation(self, *, task: str | None, expert: str, n: int) -> None:
        """``n`` prompts of ``task`` were longer than ``expert``'s window and were cut."""
        if self.enabled and n:
            key = (task, expert)
            self._truncated[key] = self._truncated.get(key, 0) + int(n)

    def register_external_process(self, expert: str, pid: int) -> None:
        """Sample the RSS (and GPU memory) of a process serving ``expert``, e.g. a llama.cpp server."""
        if not self.enabled:
            return
        try:
            self._rss.add_process(expert, pid)
        except Exception as exc:
            self._notes.append(f"cannot watch process {pid} of expert '{expert}': {exc.__class__.__name__}: {exc}")
            return
        self._pids.add(int(pid))

    def note_backend_peak_rss(self, expert: str, peak_bytes: int | None) -> None:
        """A peak RSS a backend measured itself (``Backend.peak_rss_bytes()``), kept if larger."""
        if self.enabled and peak_bytes:
            self._rss.note_external_peak(expert, int(peak_bytes))

    # -- the report -----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Everything measured so far, JSON-serialisable (see :mod:`.report`)."""
        if not self.enabled:
            return disabled()
        return build_report(self.snapshot())

    def snapshot(self) -> ProfilerSnapshot:
        """What has been measured so far, as the record the report reads (enabled profilers only)."""
        if not self.enabled:
            raise ProfileError("a disabled profiler measured nothing: there is no snapshot to take")
        return ProfilerSnapshot(
            device=self.device,
            interval_ms=self.interval_ms,
            started_at=self._started_at,
            opened=self._opened,
            wall_s=self.wall_s(),
            records=tuple(self._records),
            failed_batches=self._failed_batches,
            loads={name: tuple(times) for name, times in self._loads.items()},
            expert_devices=dict(self._expert_devices),
            default_device=device_key(self.device),
            served=self._served,
            truncated=dict(self._truncated),
            streams={task: (tuple(samples), warmup, probe_s) for task, (samples, warmup, probe_s) in self._streams.items()},
            router=tuple(self._router),
            notes=tuple(self._notes),
            sampler_samples=self._sampler.samples,
            sampler_cpu_s=self._sampler.cpu_s,
            sampler_errors=tuple(self._sampler.errors),
            meters=dict(self._meters),
            torch_peaks=dict(self._torch_peaks) if self._torch_peaks is not None else None,
            peak_rss_bytes=self._rss.peak_bytes or self._rss.current_bytes(),
            peak_rss_source=self._rss.peak_source,
            backend_peak_rss_bytes=dict(self._rss.external_peak_bytes),
        )

    def wall_s(self) -> float:
        return self._active_s + (time.perf_counter() - self._run_t0 if self._run_t0 is not None else 0.0)

    # -- output ---------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically and never over an existing file.

        ``path`` may be a folder (a ``profile_<time>.json`` is created inside). The JSON goes to a
        temporary file first, which is then hard-linked to the final name: the link fails if the
        name exists, so a concurrent writer can never be overwritten. Where hard links are not
        supported, ``os.replace`` after an existence check is the fallback.
        """
        target = Path(path)
        if target.is_dir():
            stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S-%f")
            target = target / f"profile_{stamp}.json"
        return write_json_exclusive(target, self.report())

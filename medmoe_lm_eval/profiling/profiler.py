"""The profiler every candidate runs under: latency, throughput, memory and energy.

``MedMoELM`` wraps each backend call in :meth:`Profiler.track` and each expert load in
:meth:`Profiler.expert_load`; a background :class:`~medmoe_lm_eval.profiling.sampler.Sampler`
polls memory, power and energy counters meanwhile. The report (``report()``) goes into lm-eval's
``results["config"]["medmoe_profile"]`` and, through ``write()``, into a ``profile_*.json``
beside the results. Full-precision models, quantized copies, GGUF files and mixtures all go
through this one class, which is what makes their rows comparable.

Two rules shape the code. The hot path costs microseconds: ``track`` only reads the clock
(after a CUDA synchronize on a GPU, so asynchronous kernels are counted) and appends a record;
energy per batch is interpolated from the sampled series when the report is built. And
profiling never fails an evaluation: a missing NVML library, a missing GPU, a counter the GPU
lacks or an unreadable RAPL file each degrade to what can still be measured, and the profile
names what was missing and why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medmoe_lm_eval.devices import resolve_device
from medmoe_lm_eval.jsonio import write_json_exclusive
from medmoe_lm_eval.profiling import ProfileError
from medmoe_lm_eval.profiling.energy import CounterIntegrator, EnergySeries, PowerIntegrator, Rapl
from medmoe_lm_eval.profiling.hardware import hardware_info, software_info
from medmoe_lm_eval.profiling.memory import RssWatch
from medmoe_lm_eval.profiling.nvml import ENERGY_MODULUS_MJ, NvmlProbe
from medmoe_lm_eval.profiling.sampler import Sampler
from medmoe_lm_eval.profiling.stats import BatchRecord, Throughput, group_by, median

__all__ = ["BatchRecord", "ProfileError", "Profiler"]

SCHEMA_VERSION = 1


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
    gains nothing). With ``enabled=False`` every method is a cheap no-op and ``report()``
    returns ``{"enabled": False}``.
    """

    def __init__(self, interval_ms: float = 100.0, device: str = "cpu", enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self.interval_ms = float(interval_ms)
        self.device = device or "auto"
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
        self._nvml: NvmlProbe | None = None
        self._nvml_used = False
        self._kept_nvml_notes: list[str] = []
        self._gpu: dict[str, Any] | None = None
        self._gpu_error: str | None = None
        self._gpu_peak: tuple[int, str] | None = None
        self._nvml_counter = CounterIntegrator(1e-3, [ENERGY_MODULUS_MJ])
        self._nvml_power = PowerIntegrator()
        self._rapl: Rapl | None = None
        self._rapl_reason: str | None = None
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
        elif self._nvml_used:
            self._nvml, _ = NvmlProbe.open(self.device)
        for integrator in (self._nvml_counter, self._nvml_power, self._rapl.integrator if self._rapl is not None else None):
            if integrator is not None:
                integrator.resume()
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
            if self._nvml is not None:
                self._kept_nvml_notes.extend(self._nvml.notes)
                self._nvml.close()
                self._nvml = None

    def _open(self) -> None:
        """First start: pick the device, the clock and the energy sources."""
        self._opened = True
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.device = resolve_device(self.device, strict=False)
        if self.device.startswith("cuda"):
            self._open_gpu()
        if self._nvml is None:
            self._rapl, self._rapl_reason = Rapl.open()

    def _open_gpu(self) -> None:
        """CUDA clock and peaks through torch (when it has CUDA), power and memory through NVML.

        The synchronize is skipped until CUDA is initialised, so a backend that never uses
        torch's CUDA (llama.cpp) does not get a CUDA context from the profiler.
        """
        torch = _torch_cuda(self.device)
        if torch is not None:
            self._torch = torch
            device = self.device

            def sync() -> None:
                if torch.cuda.is_initialized():
                    torch.cuda.synchronize(device)

            self._sync = sync
            if torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats(self.device)
        self._nvml, self._gpu_error = NvmlProbe.open(self.device)
        if self._nvml is not None:
            self._nvml_used = True
            self._gpu = self._nvml.info()

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
        nvml = self._nvml
        if nvml is not None:
            reading = nvml.read(self._pids, errors)
            if reading.energy_mj is not None:
                self._nvml_counter.feed(now, [reading.energy_mj])
            if reading.power_w is not None:
                self._nvml_power.feed(now, reading.power_w)
            if reading.used_bytes is not None and (self._gpu_peak is None or reading.used_bytes > self._gpu_peak[0]):
                self._gpu_peak = (reading.used_bytes, reading.scope or "device")
        if self._rapl is not None:
            try:
                self._rapl.sample(now)
            except (OSError, ValueError) as exc:
                errors.append(f"rapl: {exc.__class__.__name__}: {exc}")

    # -- what the model calls -------------------------------------------------------------------
    @contextmanager
    def expert_load(self, expert: str) -> Iterator[None]:
        """Time one load of ``expert`` (an expert evicted and reloaded is timed each time)."""
        if not self.enabled:
            yield
            return
        t0 = time.perf_counter()
        yield
        self._sync()
        self._loads.setdefault(expert, []).append(time.perf_counter() - t0)

    @contextmanager
    def track(self, *, expert: str, request_type: str, task: str | None, n_requests: int, prompt_tokens: int) -> Iterator[BatchRecord]:
        """One backend call on one batch. The caller sets ``rec.generated_tokens`` after generation."""
        rec = BatchRecord(expert, request_type, task, n_requests, prompt_tokens)
        if not self.enabled:
            yield rec
            return
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
        """Everything measured so far, JSON-serialisable (see the schema in the module docs)."""
        if not self.enabled:
            return {"enabled": False}
        records = list(self._records)
        wall_s = self._active_s + (time.perf_counter() - self._run_t0 if self._run_t0 is not None else 0.0)
        series, source, reason = self._energy_source()
        energies = series.between([(r.start_s, r.end_s) for r in records]) if series is not None else None
        batch_j = dict(zip(map(id, records), energies, strict=True)) if energies is not None else None
        total = Throughput.from_records(records)
        if not self._opened:  # tracked without start(): the busy time is all there is
            wall_s = total.wall_s
        return {
            "schema": SCHEMA_VERSION,
            "enabled": True,
            "device": self.device,
            "started_at": self._started_at,
            "wall_s": wall_s,
            "hardware": hardware_info(self._gpu),
            "software": software_info(),
            "total": total.to_dict(),
            "failed_batches": self._failed_batches,
            "request_types": {k: Throughput.from_records(v).to_dict() for k, v in group_by(records, "request_type").items()},
            "tasks": self._tasks(records, batch_j),
            "experts": self._experts(records, batch_j),
            "router": self._router_report(),
            "memory": self._memory_report(),
            "energy": self._energy_report(series, source, reason, energies, total.requests),
            "sampler": {
                "interval_ms": self.interval_ms,
                "samples": self._sampler.samples,
                "cpu_s": self._sampler.cpu_s,
                "cpu_fraction": self._sampler.cpu_s / wall_s if wall_s > 0 else None,
                "errors": self._sampler.errors,
                "notes": self._notes + self._nvml_notes(),
            },
        }

    def _nvml_notes(self) -> list[str]:
        """Unsupported NVML readings, from this and earlier (closed) NVML sessions."""
        current = self._nvml.notes if self._nvml is not None else []
        return list(dict.fromkeys(self._kept_nvml_notes + current))

    def _tasks(self, records: list[BatchRecord], batch_j: dict[int, float] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for task, recs in group_by(records, "task").items():
            entry = Throughput.from_records(recs).to_dict()
            entry["energy_j"] = sum(batch_j[id(r)] for r in recs) if batch_j is not None else None
            entry["truncated"] = sum(n for (t, _), n in self._truncated.items() if (t or "(none)") == task)
            entry["experts"] = {e: Throughput.from_records(rs).to_dict() for e, rs in group_by(recs, "expert").items()}
            out[task] = entry
        for (noted, _), n in self._truncated.items():  # truncation noted for a task never tracked
            out.setdefault(noted or "(none)", {**Throughput.from_records([]).to_dict(), "energy_j": None, "truncated": n, "experts": {}})
        return out

    def _experts(self, records: list[BatchRecord], batch_j: dict[int, float] | None) -> dict[str, Any]:
        grouped = group_by(records, "expert")
        out: dict[str, Any] = {}
        for name in list(self._loads) + [e for e in grouped if e not in self._loads]:
            recs = grouped.get(name, [])
            loads = self._loads.get(name, [])
            entry: dict[str, Any] = {"load_s": sum(loads), "loads": len(loads)}
            entry.update(Throughput.from_records(recs).to_dict())
            entry["request_types"] = {k: Throughput.from_records(v).to_dict() for k, v in group_by(recs, "request_type").items()}
            entry["energy_j"] = sum(batch_j[id(r)] for r in recs) if batch_j is not None else None
            entry["truncated"] = sum(n for (_, e), n in self._truncated.items() if e == name)
            out[name] = entry
        return out

    def _router_report(self) -> dict[str, Any]:
        per_query_ms = [1000.0 * s / n for s, n in self._router]
        return {
            "calls": len(self._router),
            "queries": sum(n for _, n in self._router),
            "total_s": sum(s for s, _ in self._router),
            "median_ms": median(per_query_ms),
        }

    def _memory_report(self) -> dict[str, Any]:
        gpu: dict[str, Any] | None = None
        if self._gpu_peak is not None or self._torch_peaks is not None:
            gpu = {
                "nvml_peak_used_bytes": self._gpu_peak[0] if self._gpu_peak else None,
                "nvml_scope": self._gpu_peak[1] if self._gpu_peak else None,
                "torch_max_allocated_bytes": None,
                "torch_max_reserved_bytes": None,
            }
            gpu.update(self._torch_peaks or {})
        return {
            "peak_rss_bytes": self._rss.peak_bytes or self._rss.current_bytes(),
            "peak_rss_source": self._rss.peak_source,
            "backend_peak_rss_bytes": dict(self._rss.external_peak_bytes),
            "gpu": gpu,
            "gpu_error": self._gpu_error,
        }

    def _energy_source(self) -> tuple[EnergySeries | None, str | None, str | None]:
        """The series to report and its name, or why there is none.

        NVML's counter is preferred; it updates only every 20-100 ms, so over a short run it may
        not move, and then (or on GPUs before Volta, which lack it) power readings are integrated.
        """
        if self._nvml_used:
            counter, power = self._nvml_counter.series, self._nvml_power.series
            if len(counter) >= 2 and counter.total > 0:
                return counter, "nvml_energy_counter", None
            why = "; ".join(self._nvml_notes()) or f"NVML energy counter did not advance over {counter.span_s:.3f} s (it updates every 20-100 ms)"
            if len(power) >= 2:
                return power, "nvml_power_integral", why
            return None, None, f"{why}; no NVML power readings either"
        if self._rapl is not None:
            return self._rapl.series, "rapl", None
        reasons = [f"nvml: {self._gpu_error}" if self._gpu_error else None, f"rapl: {self._rapl_reason}" if self._rapl_reason else None]
        return None, None, "; ".join(r for r in reasons if r) or "no energy source opened (profiler never started)"

    def _energy_report(
        self, series: EnergySeries | None, source: str | None, reason: str | None, energies: list[float] | None, requests: int
    ) -> dict[str, Any]:
        batches_j = sum(energies) if energies is not None else None
        joules = series.total if series is not None else None
        span = series.span_s if series is not None else 0.0
        return {
            "joules": joules,
            "source": source,
            "reason": reason,
            "batches_j": batches_j,
            "per_request_j": batches_j / requests if batches_j is not None and requests else None,
            "mean_power_w": joules / span if joules is not None and span > 0 else None,
            "rapl_zones": self._rapl.describe() if source == "rapl" and self._rapl is not None else None,
        }

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

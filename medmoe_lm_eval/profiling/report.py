"""The profile a :class:`~medmoe_lm_eval.profiling.profiler.Profiler` reports, built as a
:class:`~medmoe_lm_eval.schema.profile.Profile` (its top level and version live there) from the
profiler's :class:`~medmoe_lm_eval.profiling.snapshot.ProfilerSnapshot`, never its own state.

Top level: ``total``, ``request_types``, ``tasks`` and ``experts`` (throughput tables: unique
``requests`` and ``expert_calls``, busy ``wall_s``, rates, tokens and ``batch_latency_ms``),
``served`` (what reached the model, and whether lm-eval's cache was attached), ``single_stream``
(the serving probe, per task), ``router``, ``memory`` and ``energy`` (each per device, with the
source of every figure), ``sampler``.

Energy: each batch is charged to the device its expert ran on, gross (what the counter moved)
and net of the idle draw measured before the run (``idle_w`` x the batch's seconds, clipped at
0 per batch). ``energy_j`` in tasks and experts, ``batches_j`` and ``per_request_j`` are net;
``None`` where one of the batches ran on a device that could not be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medmoe_lm_eval.profiling.energy import EnergySeries
from medmoe_lm_eval.profiling.hardware import hardware_info, software_info
from medmoe_lm_eval.profiling.meters import NvmlMeter, RaplMeter
from medmoe_lm_eval.profiling.single_stream import summarise
from medmoe_lm_eval.profiling.snapshot import ProfilerSnapshot
from medmoe_lm_eval.profiling.stats import BatchRecord, Throughput, group_by, median
from medmoe_lm_eval.schema.profile import Profile


def build_report(snap: ProfilerSnapshot) -> dict[str, Any]:
    """The profile of ``snap``, validated through the schema and returned as its JSON dict."""
    records = list(snap.records)
    wall_s = snap.wall_s
    used = _used_devices(snap, records)
    devices = {key: _device_energy(snap, key, [r for r in records if r.device == key]) for key in used}
    batch_j: dict[int, float | None] = {}
    for entry in devices.values():
        batch_j.update(entry.pop("_batches"))
    served = snap.served
    total = Throughput.from_records(records, served.requests() if served.declared else None)
    if not snap.opened:  # tracked without start(): the busy time is all there is
        wall_s = total.wall_s
    return Profile(
        device=snap.device,
        started_at=snap.started_at,
        wall_s=wall_s,
        hardware=hardware_info(_primary_gpu_info(snap)),
        software=software_info(),
        total=total.to_dict(),
        failed_batches=snap.failed_batches,
        request_types=_request_types(snap, records),
        tasks=_tasks(snap, records, batch_j),
        experts=_experts(snap, records, batch_j, devices),
        served=served.report() if served.declared or served.cache_attached else None,
        single_stream=_single_stream(snap),
        router=_router_report(snap),
        memory=_memory_report(snap, used),
        energy=_energy_report(snap, devices, total.requests, used),
        sampler={
            "interval_ms": snap.interval_ms,
            "samples": snap.sampler_samples,
            "cpu_s": snap.sampler_cpu_s,
            "cpu_fraction": snap.sampler_cpu_s / wall_s if wall_s > 0 else None,
            "errors": list(snap.sampler_errors),
            "notes": list(snap.notes) + _nvml_notes(snap),
        },
    ).to_dict()


def _used_devices(snap: ProfilerSnapshot, records: Sequence[BatchRecord]) -> list[str]:
    """Devices whose experts did work (batches or loads); the run's device when none did."""
    seen = dict.fromkeys(r.device for r in records)
    seen.update(dict.fromkeys(snap.expert_device(e) for e in snap.loads))
    return list(seen) or [snap.expert_device("")]


def _nvml_notes(snap: ProfilerSnapshot) -> list[str]:
    notes = [n for m in snap.meters.values() if isinstance(m, NvmlMeter) for n in m.all_notes()]
    return list(dict.fromkeys(notes))


def _primary_gpu_info(snap: ProfilerSnapshot) -> dict[str, Any] | None:
    meter = snap.meters.get(snap.expert_device(""))
    return meter.info if isinstance(meter, NvmlMeter) else None


def _device_energy(snap: ProfilerSnapshot, key: str, records: list[BatchRecord]) -> dict[str, Any]:
    """One device: gross joules over the run, idle draw, and each of its batches' net joules."""
    meter = snap.meters.get(key)
    series, source, reason = meter.energy() if meter is not None else (None, None, f"{key}: no meter was opened (profiler never started)")
    idle = meter.idle.to_dict() if meter is not None else {"idle_w": None, "idle_s": 0.0, "idle_source": None, "idle_reason": None}
    gross = series.between([(r.start_s, r.end_s) for r in records]) if series is not None else None
    watts = idle["idle_w"] or 0.0
    net = [max(0.0, g - watts * r.seconds) for g, r in zip(gross, records)] if gross is not None else None
    span = series.span_s if series is not None else 0.0
    joules = series.total if series is not None else None
    return {
        "source": source,
        "reason": reason,
        "joules": joules,
        "mean_power_w": joules / span if joules is not None and span > 0 else None,
        **idle,
        "batches_gross_j": sum(gross) if gross is not None else None,
        "batches_j": sum(net) if net is not None else None,
        "rapl_zones": meter.describe() if isinstance(meter, RaplMeter) and source == "rapl" else None,
        "_batches": {id(r): (net[i] if net is not None else None) for i, r in enumerate(records)},
    }


def _joules(recs: Sequence[BatchRecord], batch_j: dict[int, float | None]) -> float | None:
    values = [batch_j.get(id(r)) for r in recs]
    return None if any(v is None for v in values) else float(sum(v for v in values if v is not None))


def _request_types(snap: ProfilerSnapshot, records: list[BatchRecord]) -> dict[str, Any]:
    served = snap.served
    return {
        k: Throughput.from_records(v, served.requests(request_type=k) if served.declared else None).to_dict()
        for k, v in group_by(records, "request_type").items()
    }


def _tasks(snap: ProfilerSnapshot, records: list[BatchRecord], batch_j: dict[int, float | None]) -> dict[str, Any]:
    served = snap.served
    out: dict[str, Any] = {}
    for task, recs in group_by(records, "task").items():
        entry = Throughput.from_records(recs, served.requests(task=task) if served.declared else None).to_dict()
        entry["docs"] = served.docs(task) if served.declared else None
        entry["energy_j"] = _joules(recs, batch_j)
        entry["energy_devices"] = sorted({r.device for r in recs})
        entry["truncated"] = sum(n for (t, _), n in snap.truncated.items() if (t or "(none)") == task)
        entry["experts"] = {e: Throughput.from_records(rs).to_dict() for e, rs in group_by(recs, "expert").items()}
        out[task] = entry
    for (name, _), n in snap.truncated.items():  # truncation noted for a task never tracked
        out.setdefault(name or "(none)", {**Throughput.from_records([]).to_dict(), "energy_j": None, "truncated": n, "experts": {}})
    return out


def _experts(snap: ProfilerSnapshot, records: list[BatchRecord], batch_j: dict[int, float | None], devices: dict[str, Any]) -> dict[str, Any]:
    """Per expert; ``requests`` here are the expert's own calls (``expert_calls``)."""
    grouped = group_by(records, "expert")
    out: dict[str, Any] = {}
    for name in list(snap.loads) + [e for e in grouped if e not in snap.loads]:
        recs = grouped.get(name, [])
        loads = snap.loads.get(name, ())
        device = snap.expert_device(name)
        entry: dict[str, Any] = {"load_s": sum(loads), "loads": len(loads), "device": device}
        entry.update(Throughput.from_records(recs).to_dict())
        entry["request_types"] = {k: Throughput.from_records(v).to_dict() for k, v in group_by(recs, "request_type").items()}
        entry["energy_j"] = _joules(recs, batch_j)
        entry["energy_source"] = (devices.get(device) or {}).get("source")
        entry["memory_source"] = "nvml" if device.startswith("cuda") else "rss" if device == "cpu" else None
        entry["truncated"] = sum(n for (_, e), n in snap.truncated.items() if e == name)
        out[name] = entry
    return out


def _single_stream(snap: ProfilerSnapshot) -> dict[str, Any] | None:
    if not snap.streams:
        return None
    out: dict[str, Any] = {}
    for task, (samples, warmup, probe_s) in snap.streams.items():
        energies = [_window_energy(snap, s.device, s.start_s, s.start_s + s.e2e_s) for s in samples]
        out[task] = {**summarise(samples, warmup, energies), "probe_s": probe_s}
    return out


def _window_energy(snap: ProfilerSnapshot, device: str, start: float, end: float) -> float | None:
    meter = snap.meters.get(device)
    series: EnergySeries | None = meter.energy()[0] if meter is not None else None
    if series is None:
        return None
    gross = series.between([(start, end)])[0]
    return max(0.0, gross - (meter.idle.watts or 0.0) * (end - start)) if meter is not None else None


def _router_report(snap: ProfilerSnapshot) -> dict[str, Any]:
    per_query_ms = [1000.0 * s / n for s, n in snap.router]
    return {
        "calls": len(snap.router),
        "queries": sum(n for _, n in snap.router),
        "total_s": sum(s for s, _ in snap.router),
        "median_ms": median(per_query_ms),
    }


def _memory_report(snap: ProfilerSnapshot, used: list[str]) -> dict[str, Any]:
    """Peak RSS for CPU work, NVML (and torch) peaks for the GPUs experts ran on, never a GPU
    figure for a run whose experts all ran on the CPU."""
    gpus = [snap.meters[k] for k in used if k.startswith("cuda") and isinstance(snap.meters.get(k), NvmlMeter)]
    peaks: list[dict[str, Any]] = [mem for m in gpus if (mem := m.memory()) is not None]
    gpu: dict[str, Any] | None = None
    torch_peaks = snap.torch_peaks if device_of_run(snap) in used else None
    if peaks or torch_peaks:
        top: dict[str, Any] = max(peaks, key=lambda p: p["nvml_peak_used_bytes"]) if peaks else {}
        gpu = {
            "nvml_peak_used_bytes": top.get("nvml_peak_used_bytes"),
            "nvml_scope": top.get("nvml_scope"),
            "torch_max_allocated_bytes": None,
            "torch_max_reserved_bytes": None,
        }
        gpu.update(torch_peaks or {})
    primary = snap.meters.get(device_of_run(snap))
    rss = snap.peak_rss_bytes
    per_device = {k: ({"peak_rss_bytes": rss, "source": "rss"} if k == "cpu" else (snap.meters[k].memory() if k in snap.meters else None)) for k in used}
    return {
        "peak_rss_bytes": rss,
        "peak_rss_source": snap.peak_rss_source,
        "backend_peak_rss_bytes": dict(snap.backend_peak_rss_bytes),
        "gpu": gpu,
        "gpu_error": primary.reason if isinstance(primary, NvmlMeter) else None,
        "per_device": per_device,
    }


def device_of_run(snap: ProfilerSnapshot) -> str:
    return snap.expert_device("")


def _energy_report(snap: ProfilerSnapshot, devices: dict[str, dict[str, Any]], requests: int, used: list[str]) -> dict[str, Any]:
    """Totals over the devices experts ran on; a device that could not be read makes them ``None``."""
    entries = [devices[k] for k in used]
    readable = all(e["source"] for e in entries)
    joules = sum(e["joules"] for e in entries) if readable else None
    batches = sum(e["batches_j"] for e in entries) if readable else None
    idle = [e["idle_w"] for e in entries]
    return {
        "joules": joules,
        "source": "+".join(dict.fromkeys(e["source"] for e in entries if e["source"])) or None,
        "reason": "; ".join(dict.fromkeys(str(e["reason"]) for e in entries if e["reason"])) or None,
        "batches_j": batches,
        "batches_gross_j": sum(e["batches_gross_j"] for e in entries) if readable else None,
        "per_request_j": batches / requests if batches is not None and requests else None,
        "idle_w": sum(idle) if idle and all(w is not None for w in idle) else None,
        "mean_power_w": sum(e["mean_power_w"] for e in entries) if readable and all(e["mean_power_w"] is not None for e in entries) else None,
        "rapl_zones": next((e["rapl_zones"] for e in entries if e["rapl_zones"]), None),
        "devices": devices,
    }

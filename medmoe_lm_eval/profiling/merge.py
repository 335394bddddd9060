"""Merging the profiles of data-parallel ranks into one, per device.

Each rank measures its own requests; the merged profile sums what adds up (requests, tokens,
energy of distinct devices), takes maxima of peaks, and never counts an energy counter shared by
two ranks twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.profiling.stats import Latency, Throughput

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class RankProfile:
    """A rank's profile with where it ran (what decides which figures add up)."""

    rank: int
    host: str
    device: str | None
    profile: dict[str, Any]

    @property
    def energy_domain(self) -> tuple[str, str]:
        """Ranks reading the same energy counter: one GPU (NVML), or one host's package (RAPL)."""
        source = str((self.profile.get("energy") or {}).get("source") or "none")
        return (self.host, str(self.profile.get("device"))) if source.startswith("nvml") else (self.host, source)


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _max(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _energy(values: Sequence[float | None], domains: Sequence[tuple[str, str]]) -> float | None:
    """Joules over ranks: summed across counters, the largest reading within one counter.

    Two processes on one host both read its RAPL package counter, so each figure already
    includes the other's draw; adding them would count the host twice.
    """
    best: dict[tuple[str, str], float] = {}
    for value, domain in zip(values, domains):
        if value is not None:
            best[domain] = max(best.get(domain, value), value)
    return sum(best.values()) if best else None


def merge_latency(parts: Sequence[dict[str, Any]]) -> Latency:
    """Exact count, mean and max; p50/p95 the largest per-rank value, an upper bound of the pooled one."""
    n = sum(int(p.get("n") or 0) for p in parts)
    mean = sum(float(p["mean"]) * int(p["n"]) for p in parts if p.get("mean") is not None) / n if n else None
    return Latency(_max(p.get("p50") for p in parts), _max(p.get("p95") for p in parts), _max(p.get("max") for p in parts), mean, n)


def merge_throughput(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Requests and tokens summed; busy time the longest rank's, since ranks run side by side.

    Rates are therefore the job's aggregate throughput, what scaling out is for.
    """
    return Throughput(
        requests=sum(int(p.get("requests") or 0) for p in parts),
        wall_s=float(_max(p.get("wall_s") for p in parts) or 0.0),
        prompt_tokens=sum(int(p.get("prompt_tokens") or 0) for p in parts),
        generated_tokens=sum(int(p.get("generated_tokens") or 0) for p in parts),
        latency=merge_latency([p.get("batch_latency_ms") or p.get("latency_ms") or {} for p in parts]),
        expert_calls=sum(int(p.get("expert_calls", p.get("requests")) or 0) for p in parts),
        generated=any(p.get("generated_tokens_per_s") is not None for p in parts),
    ).to_dict()


def _keyed(parts: Sequence[RankProfile], section: str, merge: Callable[[list[dict[str, Any]], list[tuple[str, str]]], dict[str, Any]]) -> dict[str, Any]:
    """Merge ``profile[section][key]`` across the ranks that have ``key``, keys in first-seen order."""
    keys: dict[str, None] = {}
    for part in parts:
        keys.update(dict.fromkeys(part.profile.get(section) or {}))
    out = {}
    for key in keys:
        have = [p for p in parts if key in (p.profile.get(section) or {})]
        out[key] = merge([p.profile[section][key] for p in have], [p.energy_domain for p in have])
    return out


def _task_entry(entries: list[dict[str, Any]], domains: list[tuple[str, str]]) -> dict[str, Any]:
    out = merge_throughput(entries)
    out["energy_j"] = _energy([e.get("energy_j") for e in entries], domains)
    out["truncated"] = sum(int(e.get("truncated") or 0) for e in entries)
    out["docs"] = _sum(e.get("docs") for e in entries)  # ranks serve disjoint documents
    out["energy_devices"] = sorted({d for e in entries for d in e.get("energy_devices") or []})
    experts: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for name, figures in (entry.get("experts") or {}).items():
            experts.setdefault(name, []).append(figures)
    out["experts"] = {name: merge_throughput(figs) for name, figs in experts.items()}
    return out


def _expert_entry(entries: list[dict[str, Any]], domains: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"load_s": sum(float(e.get("load_s") or 0.0) for e in entries), "loads": sum(int(e.get("loads") or 0) for e in entries)}
    out.update(merge_throughput(entries))
    kinds: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for kind, figures in (entry.get("request_types") or {}).items():
            kinds.setdefault(kind, []).append(figures)
    out["request_types"] = {kind: merge_throughput(figs) for kind, figs in kinds.items()}
    out["energy_j"] = _energy([e.get("energy_j") for e in entries], domains)
    out["truncated"] = sum(int(e.get("truncated") or 0) for e in entries)
    return out


def _memory(parts: Sequence[RankProfile]) -> dict[str, Any]:
    """Peaks per device; the top-level figures are the most loaded device's.

    Processes on one host share its RAM, so their peak RSS add up (an upper bound: the peaks
    need not coincide); each GPU is its own device. Leaderboards read the top-level figures,
    i.e. the memory the job needs on its largest device.
    """
    devices: dict[str, dict[str, Any]] = {}
    for part in parts:
        mem = part.profile.get("memory") or {}
        gpu = mem.get("gpu") or {}
        key = f"{part.host}/{part.device or part.profile.get('device')}"
        entry = devices.setdefault(key, {"ranks": [], "peak_rss_bytes": 0, "nvml_peak_used_bytes": None, "torch_max_reserved_bytes": None})
        entry["ranks"].append(part.rank)
        entry["peak_rss_bytes"] += int(mem.get("peak_rss_bytes") or 0)
        entry["nvml_peak_used_bytes"] = _max([entry["nvml_peak_used_bytes"], gpu.get("nvml_peak_used_bytes")])
        entry["torch_max_reserved_bytes"] = _sum([entry["torch_max_reserved_bytes"], gpu.get("torch_max_reserved_bytes")])
    mems = [p.profile.get("memory") or {} for p in parts]
    gpus = [m["gpu"] for m in mems if m.get("gpu")]
    backend_peaks: dict[str, int] = {}
    for mem in mems:
        for name, peak in (mem.get("backend_peak_rss_bytes") or {}).items():
            backend_peaks[name] = max(backend_peaks.get(name, 0), int(peak or 0))
    return {
        "peak_rss_bytes": max((d["peak_rss_bytes"] for d in devices.values()), default=0),
        "peak_rss_source": mems[0].get("peak_rss_source") if mems else None,
        "backend_peak_rss_bytes": backend_peaks,
        "gpu": {key: _max(g.get(key) for g in gpus) for key in gpus[0]} if gpus else None,
        "gpu_error": next((m.get("gpu_error") for m in mems if m.get("gpu_error")), None),
        "per_device": devices,
    }


def _energy_section(parts: Sequence[RankProfile], requests: int) -> dict[str, Any]:
    energies = [p.profile.get("energy") or {} for p in parts]
    domains = [p.energy_domain for p in parts]
    batches_j = _energy([e.get("batches_j") for e in energies], domains)
    return {
        "joules": _energy([e.get("joules") for e in energies], domains),
        "source": ",".join(dict.fromkeys(str(e["source"]) for e in energies if e.get("source"))) or None,
        "reason": "; ".join(dict.fromkeys(str(e["reason"]) for e in energies if e.get("reason"))) or None,
        "batches_j": batches_j,
        "batches_gross_j": _energy([e.get("batches_gross_j") for e in energies], domains),
        "per_request_j": batches_j / requests if batches_j is not None and requests else None,
        "idle_w": _energy([e.get("idle_w") for e in energies], domains),
        "mean_power_w": _energy([e.get("mean_power_w") for e in energies], domains),
        "devices": {f"rank{p.rank}/{k}": v for p, e in zip(parts, energies) for k, v in (e.get("devices") or {}).items()},
        "rapl_zones": next((e.get("rapl_zones") for e in energies if e.get("rapl_zones")), None),
    }


def _served(parts: Sequence[RankProfile]) -> dict[str, Any] | None:
    """Unique requests and documents summed over ranks (each serves its own share)."""
    served: list[dict[str, Any]] = [p.profile["served"] for p in parts if p.profile.get("served")]
    if not served:
        return None
    return {
        "requests": sum(int(s.get("requests") or 0) for s in served),
        "cache": next((s.get("cache") for s in served if (s.get("cache") or {}).get("attached")), served[0].get("cache")),
    }


def _router(parts: Sequence[RankProfile]) -> dict[str, Any]:
    routers = [p.profile.get("router") or {} for p in parts]
    return {
        "calls": sum(int(r.get("calls") or 0) for r in routers),
        "queries": sum(int(r.get("queries") or 0) for r in routers),
        "total_s": sum(float(r.get("total_s") or 0.0) for r in routers),
        "median_ms": _max(r.get("median_ms") for r in routers),
    }


def _sampler(parts: Sequence[RankProfile], wall_total: float) -> dict[str, Any]:
    samplers = [p.profile.get("sampler") or {} for p in parts]
    cpu_s = sum(float(s.get("cpu_s") or 0.0) for s in samplers)
    return {
        "interval_ms": samplers[0].get("interval_ms"),
        "samples": sum(int(s.get("samples") or 0) for s in samplers),
        "cpu_s": cpu_s,
        "cpu_fraction": cpu_s / wall_total if wall_total > 0 else None,
        "errors": [err for s in samplers for err in s.get("errors") or []],
        "notes": list(dict.fromkeys(note for s in samplers for note in s.get("notes") or [])),
    }


def merge_profiles(parts: Sequence[RankProfile]) -> dict[str, Any]:
    """One profile for the job, in the single-process schema, plus ``data_parallel.ranks``.

    Counts (requests, tokens, loads, router queries, truncations) are summed; wall and busy
    times are the slowest rank's, so rates are the job's aggregate; latency percentiles are the
    largest per-rank value (an upper bound: the raw batches stay on their ranks); memory is per
    device (:func:`_memory`); energy is summed per counter (:func:`_energy`). Every rank's own
    profile is kept whole under ``data_parallel.ranks``.
    """
    parts = sorted(parts, key=lambda p: p.rank)
    if len(parts) == 1 or not all(p.profile.get("enabled", True) for p in parts):
        return dict(parts[0].profile)
    base = parts[0].profile
    total = merge_throughput([p.profile.get("total") or {} for p in parts])
    walls = [float(p.profile.get("wall_s") or 0.0) for p in parts]
    merged = dict(base)
    merged.update(
        {
            "device": ",".join(dict.fromkeys(str(p.profile.get("device")) for p in parts)),
            "wall_s": max(walls),
            "total": total,
            "failed_batches": sum(int(p.profile.get("failed_batches") or 0) for p in parts),
            "request_types": _keyed(parts, "request_types", lambda entries, _: merge_throughput(entries)),
            "tasks": _keyed(parts, "tasks", _task_entry),
            "experts": _keyed(parts, "experts", _expert_entry),
            "served": _served(parts),
            "router": _router(parts),
            "memory": _memory(parts),
            "energy": _energy_section(parts, int(total["requests"])),
            "sampler": _sampler(parts, sum(walls)),
            "data_parallel": {
                "world_size": len(parts),
                "ranks": [{"rank": p.rank, "host": p.host, "device": p.device, "profile": p.profile} for p in parts],
            },
        }
    )
    return merged

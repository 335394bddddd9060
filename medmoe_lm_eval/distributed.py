"""Data parallelism for ``MedMoELM``: lm-eval shards the documents, accelerate runs the processes.

Under ``accelerate launch`` (or ``torchrun``) every process builds its own ``MedMoELM``, and
lm-eval's evaluator gives each one ``1/world_size`` of every task's documents, pads the ranks to
equal request counts, ``all_gather``s counts, calls ``barrier()`` after each request type and
``gather_object``s samples and metrics to rank 0. The model only has to answer those calls,
which is what :class:`DataParallel` does, with accelerate's ``PartialState`` as the one source
of rank, world size and device (lm-eval's ``HFLM`` sets itself up only for more than one GPU,
so a CPU run, or a mixture of GGUF and remote experts, would otherwise never be sharded).

Each rank keeps its own routing decisions and profile. They reach rank 0 through a collective
that every rank is guaranteed to reach: the evaluator's ``barrier()`` after each request type.
Not a collective inside the request methods, because ``--use_cache`` skips the model entirely on
a rank whose requests are all cached while another rank still calls it, and a collective there
would hang; and not files on a shared disk, because nodes need not share one. Rank 0 then
writes one routing log and one profile, merged by :func:`merge_profiles` (per-rank figures
kept, counts summed, peaks per device).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from medmoe_lm_eval.profiling.stats import Latency, Throughput
from medmoe_lm_eval.routing_log import RoutingLog, RoutingRecord

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ranks wait for each other at every barrier; a router that sends most work to one rank's
#: experts can keep the others waiting for hours, so the group must not time out (HFLM does the same)
GROUP_TIMEOUT = timedelta(weeks=52)


def launched_world_size() -> int:
    """Processes in the job, from the environment ``accelerate launch`` and ``torchrun`` set."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _single_cpu_launch() -> bool:
    """``accelerate launch --cpu --num_processes N`` without an MPI hostfile starts one process.

    Its simple launcher sets ``MASTER_ADDR`` (because N > 1) but starts only this process and no
    ``WORLD_SIZE``; telling the user beats a run that silently uses one core's share of the work.
    """
    return os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the job and the collectives lm-eval's evaluator calls.

    ``device`` is where this process's local experts go (``cuda:<local rank>`` on GPUs, ``cpu``
    otherwise); ``comm_device`` is where tensors for ``all_gather`` must live (gloo: CPU,
    NCCL: the process's GPU). ``rank`` is the global process index, so two nodes of four GPUs
    give ranks 0-7 (``HFLM`` uses the local index, which repeats across nodes).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str | None = None
    comm_device: str = "cpu"
    host: str = field(default_factory=socket.gethostname)

    @classmethod
    def from_environment(cls, requested_device: str | None = None) -> DataParallel:
        """Join the job the launcher started, or stay a single process with ``requested_device``."""
        if launched_world_size() <= 1:
            if _single_cpu_launch():
                log.warning(
                    "accelerate launch --cpu started a single process (several CPU processes need --mpirun_hostfile); "
                    "for data parallelism on CPUs use `accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`"
                )
            return cls(device=requested_device)
        import torch
        from accelerate import PartialState

        cpu = requested_device == "cpu" or not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
        state = PartialState(cpu=cpu, timeout=GROUP_TIMEOUT)
        on_gpu = state.device.type == "cuda"
        device = f"cuda:{state.local_process_index}" if on_gpu else "cpu"
        if requested_device not in (None, "", "auto", device):
            log.info("data parallel: device '%s' replaced by this process's own device '%s'", requested_device, device)
        return cls(state.process_index, state.num_processes, state.local_process_index, device, device if on_gpu else "cpu")

    # -- the collectives lm-eval's evaluator calls -----------------------------------------
    def all_gather(self, tensor: Any) -> Any:
        """Concatenate ``tensor`` from every rank (0-d tensors become one entry each)."""
        if self.world_size <= 1:
            return tensor
        from accelerate.utils import gather

        return gather(tensor.to(self.comm_device))

    def gather_object(self, obj: T, dst: int = 0) -> list[T] | None:
        """Every rank's ``obj`` on ``dst`` (in rank order), ``None`` elsewhere."""
        if self.world_size <= 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.rank == dst else None
        dist.gather_object(obj, object_gather_list=out, dst=dst)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()


# -- padding --------------------------------------------------------------------------------------


def unpadded(requests: Sequence[Instance], serve: Callable[[list[Instance]], list[T]]) -> list[T]:
    """``serve`` each request once, answering lm-eval's padding copies from the original.

    To give every rank the same number of requests, the evaluator appends more copies of a
    request object that is already in the list (``req.repeats`` copies, like its own). A request
    legitimately appears ``repeats`` times; any further occurrence is padding. Serving padding
    would cost model time and add phantom rows to the routing log and the profile, so those
    positions get the original's answer instead (what lm-eval then discards anyway).
    """
    seen: dict[int, list[int]] = {}
    kept: list[int] = []
    source: list[int] = []
    for i, req in enumerate(requests):
        slots = seen.setdefault(id(req), [])
        if len(slots) < max(1, int(getattr(req, "repeats", 1) or 1)):
            slots.append(len(kept))
            kept.append(i)
            source.append(len(kept) - 1)
        else:
            source.append(slots[0])
    if len(kept) == len(requests):
        return serve(list(requests))
    served = serve([requests[i] for i in kept])
    return [served[j] for j in source]


def keep_expert_local(backend: Any) -> None:
    """An expert's own ``HFLM`` must not join the job's process group.

    On more than one GPU, ``HFLM`` sees the launcher's ``WORLD_SIZE`` and makes itself a
    data-parallel rank: its rolling loglikelihood and ``batch_size: auto`` then call collectives
    per expert call, and since ranks call different experts a different number of times, the
    job would hang. Here the mixture is the rank; the expert inside it is a single process.
    """
    lm = getattr(backend, "lm", None)
    if lm is not None and getattr(lm, "_world_size", 1) > 1:
        lm._rank, lm._world_size = 0, 1


# -- what each rank sends to rank 0 -------------------------------------------------------------------


class BufferedRoutingLog(RoutingLog):
    """A non-zero rank's routing log: no file; its rows wait for the next barrier to reach rank 0."""

    def __init__(self) -> None:
        super().__init__(None)
        self._pending: list[RoutingRecord] = []

    def add(self, records: Sequence[RoutingRecord]) -> None:
        super().add(records)
        self._pending.extend(records)

    def take(self) -> list[RoutingRecord]:
        out, self._pending = self._pending, []
        return out


@dataclass
class RankSnapshot:
    """One rank's state at a barrier: new routing rows, its profile so far, its expert loads."""

    rank: int
    host: str
    device: str | None
    records: list[RoutingRecord]
    profile: dict[str, Any]
    expert_loads: dict[str, int]
    expert_infos: dict[str, dict[str, Any]]


def snapshot(dp: DataParallel, routing: RoutingLog, profiler: Any, pool: Any) -> RankSnapshot | None:
    """What this rank sends at a barrier; ``None`` on rank 0, whose state is read where it is."""
    if dp.rank == 0 or not isinstance(routing, BufferedRoutingLog):
        return None
    return RankSnapshot(dp.rank, dp.host, dp.device, routing.take(), profiler.report(), dict(pool.load_counts), dict(pool.infos))


def absorb(gathered: Sequence[RankSnapshot | None] | None, routing: RoutingLog, peers: dict[int, RankSnapshot]) -> None:
    """On rank 0: append the other ranks' routing rows to the log, keep their latest snapshot."""
    for snap in gathered or []:
        if snap is not None:
            routing.add(snap.records)
            peers[snap.rank] = snap


def total_loads(own: dict[str, int], peers: Iterable[RankSnapshot]) -> dict[str, int]:
    """Expert loads summed over ranks (residency limits apply per process, so loads add up)."""
    out = dict(own)
    for snap in peers:
        for name, n in snap.expert_loads.items():
            out[name] = out.get(name, 0) + n
    return out


def rank_summary(dp: DataParallel, own_loads: dict[str, int], peers: dict[int, RankSnapshot]) -> dict[str, Any]:
    """``results["config"]["medmoe"]["data_parallel"]``: who ran where and what each loaded."""
    ranks = [{"rank": dp.rank, "host": dp.host, "device": dp.device, "expert_loads": dict(own_loads)}]
    ranks += [{"rank": s.rank, "host": s.host, "device": s.device, "expert_loads": s.expert_loads} for _, s in sorted(peers.items())]
    return {"world_size": dp.world_size, "ranks": ranks}


# -- merging profiles ----------------------------------------------------------------------------------


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
        latency=merge_latency([p.get("latency_ms") or {} for p in parts]),
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
        "per_request_j": batches_j / requests if batches_j is not None and requests else None,
        "mean_power_w": _energy([e.get("mean_power_w") for e in energies], domains),
        "rapl_zones": next((e.get("rapl_zones") for e in energies if e.get("rapl_zones")), None),
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


# -- launching ---------------------------------------------------------------------------------------


def launch_command(num_processes: int, module: str, args: Sequence[str], port: int | None = None) -> list[str]:
    """``accelerate launch`` running ``python -m <module> <args>`` as ``num_processes`` local processes.

    ``--multi_gpu`` also on a CPU-only machine: it selects accelerate's torchrun launcher, which
    starts the processes; ``--cpu`` selects the simple launcher, which starts one process unless
    given an MPI hostfile. Without GPUs the processes join through gloo
    (:meth:`DataParallel.from_environment`). ``port`` keeps concurrent jobs on one host apart.
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if num_processes > 1:
        cmd += ["--multi_gpu"]
    cmd += ["--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return [*cmd, "-m", module, *args]

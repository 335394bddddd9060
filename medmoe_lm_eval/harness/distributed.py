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

from medmoe_lm_eval.harness.routing.decision_log import RoutingLog
from medmoe_lm_eval.schema.routing_row import RoutingRow

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
        self._pending: list[RoutingRow] = []

    def add(self, records: Sequence[RoutingRow]) -> None:
        super().add(records)
        self._pending.extend(records)

    def take(self) -> list[RoutingRow]:
        out, self._pending = self._pending, []
        return out


@dataclass
class RankSnapshot:
    """One rank's state at a barrier: new routing rows, its profile so far, its expert loads."""

    rank: int
    host: str
    device: str | None
    records: list[RoutingRow]
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

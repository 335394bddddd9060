"""``MedMoELM``: the lm-eval model ``medmoe``. Every candidate, plain or mixture, runs through it.

Each request method is the same pipeline: route -> group by expert -> call each expert's
backend on its share (one expert resident at a time if memory is limited; experts on different
devices or servers at the same time, ``scheduler``) -> fuse. A plain candidate is the degenerate
case (one expert, weight 1), so single models, quantized copies and mixtures are measured by the
same code and the same profiler.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval.api.model import LM
from tqdm import tqdm

from medmoe_lm_eval import __version__
from medmoe_lm_eval.benchmarks.domains import task_domain
from medmoe_lm_eval.benchmarks.sources import environment_setting
from medmoe_lm_eval.harness import distributed, run_folder, scheduler
from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.chat import ChatTemplating
from medmoe_lm_eval.harness.config import AdapterConfig, dump_adapter, load_adapter
from medmoe_lm_eval.harness.fusion import fuse_loglikelihood, fuse_rolling
from medmoe_lm_eval.harness.model_args import ModelOptions
from medmoe_lm_eval.harness.pool import ExpertPool
from medmoe_lm_eval.harness.probe import ServingProbe, parse_prompts
from medmoe_lm_eval.harness.routing.decision_log import RoutingLog, truncate_text
from medmoe_lm_eval.harness.routing.router import Route, Router
from medmoe_lm_eval.jsonio import write_json_exclusive
from medmoe_lm_eval.profiling import merge
from medmoe_lm_eval.profiling.profiler import Profiler
from medmoe_lm_eval.profiling.stats import overlap_summary
from medmoe_lm_eval.schema.routing_row import RoutingRow
from medmoe_lm_eval.schema.run_record import PROFILE_SECTION, RUN_SECTION, RoutingSummary, RunRecord

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

#: what the router reads for each request type (lm-eval's ``Instance.args`` shapes)
ROUTING_TEXT: dict[str, Callable[[tuple], str]] = {
    "loglikelihood": lambda args: args[0] + args[1],
    "loglikelihood_rolling": lambda args: args[0],
    "generate_until": lambda args: args[0],
}


def _check_generation_fits(backend: Backend, name: str, task: str | None, batch: list[Instance]) -> None:
    """A task asking for as many new tokens as the whole window leaves no room for the prompt."""
    window = backend.max_length
    wanted = max(int(r.args[1].get("max_gen_toks", 256)) for r in batch)
    if window and wanted >= window:
        raise BackendError(
            f"expert '{name}': task {task} asks for up to {wanted} new tokens but the expert's window is {window} tokens; "
            f"fix: pass --gen_kwargs max_gen_toks=<fewer than {window}> or give the expert a longer max_length"
        )


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


class MedMoELM(ChatTemplating, LM):
    """An adapter config evaluated as one lm-eval model (``--model medmoe --model_args adapter=...``)."""

    def __init__(self, **model_args: Any) -> None:
        """``model_args``: ``--model_args`` plus lm-eval's batch and device (``model_args.MODEL_ARGS``)."""
        super().__init__()
        opts = ModelOptions.parse(model_args)
        self.cfg: AdapterConfig = load_adapter(opts.adapter)
        self.dp = distributed.DataParallel.from_environment(opts.device)
        device = self.dp.device  # under data parallelism: this process's own device
        self._peers: dict[int, distributed.RankSnapshot] = {}
        self.router = Router(self.cfg)
        self.display_name = opts.model or self.cfg.name
        self.stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S-%f")
        self.log_dir = run_folder.log_dir(opts.log_dir, opts.model, opts.output_path)
        enabled = self.cfg.profile.enabled if opts.profile is None else opts.profile
        self.profiler = Profiler(interval_ms=self.cfg.profile.interval_ms, device=device or "auto", enabled=enabled, idle_s=self.cfg.profile.idle_s)
        self.pool = ExpertPool(self.cfg.experts, self.profiler, opts.max_resident or self.cfg.memory.max_resident, device, opts.batch)
        self.concurrent = opts.concurrent  # experts on different devices or servers serve at once
        self._batches: dict[str, dict[str, Any]] = {}  # expert -> requested and effective batch
        self.probe = ServingProbe(self.router, self.pool.get, self.profiler, parse_prompts(opts.probe, self.cfg.profile.probe_prompts) if self.rank == 0 else 0)
        self.routing = RoutingLog(self._log_path("routing", "jsonl")) if self.rank == 0 else distributed.BufferedRoutingLog()
        self.profiler.start()

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None) -> MedMoELM:
        """lm-eval names the results folder from this very dict: name it after the candidate."""
        run_folder.name_the_run(arg_dict)
        return super().create_from_arg_obj(arg_dict, additional_config)

    # -- configuration helpers ----------------------------------------------------------------
    def _log_path(self, kind: str, suffix: str) -> Path | None:
        if self.log_dir is None:
            return None
        from lm_eval.utils import sanitize_model_name

        return self.log_dir / f"{kind}_{sanitize_model_name(self.cfg.name)}_{self.stamp}.{suffix}"

    # -- lm-eval request methods ------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._serve("loglikelihood", requests, disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return self._serve("loglikelihood_rolling", requests, disable_tqdm)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self._serve("generate_until", requests, disable_tqdm)

    # -- the pipeline ---------------------------------------------------------------------------------
    def _serve(self, rtype: str, requests: list[Instance], disable_tqdm: bool) -> list[Any]:
        if self.world_size > 1:  # lm-eval pads ranks with copies of a request: answer each request once
            return distributed.unpadded(requests, lambda unique: self._serve_unique(rtype, unique, disable_tqdm))
        return self._serve_unique(rtype, requests, disable_tqdm)

    def _serve_unique(self, rtype: str, requests: list[Instance], disable_tqdm: bool) -> list[Any]:
        # an empty list returns at once even under data parallelism: ranks meet in barrier(), not here
        if not requests:
            return []
        routes = self._route(rtype, requests)
        plan: dict[str, list[int]] = defaultdict(list)
        for i, route in enumerate(routes):
            for name in route.experts[:1] if rtype == "generate_until" else route.experts:
                plan[name].append(i)
        needed = [1 if rtype == "generate_until" else len(r.experts) for r in routes]
        partial: list[dict[str, Any]] = [{} for _ in requests]
        final: list[Any] = [None] * len(requests)
        groups = scheduler.placement_groups(self.pool.order(list(plan)), self.pool.placement)
        with tqdm(total=sum(map(len, plan.values())), desc=f"medmoe {rtype}", disable=disable_tqdm or self.rank != 0) as bar:
            for done in scheduler.serve(groups, lambda name: self._serve_expert(rtype, name, plan[name], requests), self.concurrent):
                for i, out in zip(done.indices, done.outputs):
                    partial[i][done.expert] = out
                    if len(partial[i]) == needed[i]:
                        final[i] = self._fuse(rtype, routes[i], partial[i])
                        self.cache_hook.add_partial(rtype, requests[i].args, final[i])
                bar.update(len(done.indices))
        self.probe.served(rtype, requests)  # counts the unique requests served, then probes new tasks
        return final

    def _serve_expert(self, rtype: str, name: str, idxs: list[int], requests: list[Instance]) -> scheduler.Chunks:
        """Expert ``name``'s share, chunk by chunk (on a scheduler thread when experts run at once)."""
        with self.pool.lease(name) as backend:
            if self.world_size > 1:
                distributed.keep_expert_local(backend)
            size = backend.prepare(rtype, [requests[i] for i in idxs])
            self._batches[name] = backend.batch_report()
            for task, chunk in scheduler.chunks(idxs, requests, backend.docs_per_call(size)):
                yield chunk, self._call(backend, name, rtype, task, [requests[i] for i in chunk])

    def _route(self, rtype: str, requests: list[Instance]) -> list[Route]:
        texts = [ROUTING_TEXT[rtype](r.args) for r in requests]
        tasks = [r.task_name for r in requests]
        started = time.perf_counter()
        routes = self.router.route(texts, tasks, [(r.task_name, r.doc_id) for r in requests])
        elapsed = time.perf_counter() - started
        self.profiler.add_router_time(elapsed, len(requests))
        overrides = self.cfg.router.task_domains if self.cfg.router else None
        domains = {t: task_domain(t, overrides) for t in set(tasks)}
        per_ms = 1000 * elapsed / len(requests)
        self.routing.add(
            [
                RoutingRow(
                    r.task_name,
                    r.doc_id,
                    rtype,
                    list(route.experts),
                    [round(w, 6) for w in route.weights],
                    domains[r.task_name],
                    route.routed_domain,
                    per_ms,
                    truncate_text(text),
                    route.fallback,
                )
                for r, route, text in zip(requests, routes, texts)
            ]
        )
        return routes

    def _prompt_tokens(self, backend: Backend, rtype: str, batch: list[Instance]) -> list[int]:
        """Tokens per request; a context shared by several answer options is tokenized once."""
        if rtype != "loglikelihood":
            return backend.count_tokens_many([ROUTING_TEXT[rtype](r.args) for r in batch])
        contexts = list(dict.fromkeys(r.args[0] for r in batch))
        per_context = dict(zip(contexts, backend.count_tokens_many(contexts)))
        continuations = backend.count_tokens_many([r.args[1] for r in batch])
        return [per_context[r.args[0]] + n for r, n in zip(batch, continuations)]

    def _call(self, backend: Backend, name: str, rtype: str, task: str | None, batch: list[Instance]) -> list[Any]:
        if rtype == "generate_until":
            _check_generation_fits(backend, name, task, batch)
        counts = self._prompt_tokens(backend, rtype, batch) if self.profiler.enabled else []
        if counts and backend.max_length:
            reserve = [r.args[1].get("max_gen_toks", 256) if rtype == "generate_until" else 0 for r in batch]
            over = sum(c > backend.max_length - res for c, res in zip(counts, reserve))
            if over:
                self.profiler.note_truncation(task=task, expert=name, n=over)
        try:
            with self.profiler.track(expert=name, request_type=rtype, task=task, n_requests=len(batch), prompt_tokens=sum(counts)) as rec:
                outputs = getattr(backend, rtype)(batch)
                if rtype == "generate_until" and self.profiler.enabled:
                    rec.generated_tokens = sum(backend.count_tokens_many(list(outputs)))
        except BackendError:
            raise
        except Exception as exc:
            if _is_oom(exc):
                raise BackendError(
                    f"expert '{name}' ran out of memory on {rtype} ({task}); fix: lower its batch_size "
                    "in the adapter or set memory.max_resident so fewer experts are loaded at once"
                ) from exc
            raise
        if len(outputs) != len(batch):
            raise BackendError(f"expert '{name}' returned {len(outputs)} results for {len(batch)} {rtype} requests")
        return list(outputs)

    @staticmethod
    def _fuse(rtype: str, route: Route, answers: dict[str, Any]) -> Any:
        if rtype == "generate_until":
            return answers[route.top]
        ordered = [answers[e] for e in route.experts]
        if rtype == "loglikelihood":
            return fuse_loglikelihood(ordered, route.weights)
        return fuse_rolling([float(a) for a in ordered], route.weights)

    # -- results ------------------------------------------------------------------------------------
    def label(self) -> str:
        """What the leaderboard colours by: full, awq, gptq, gguf-<type>, moe or ensemble."""
        if self.cfg.kind == "moe":
            return "ensemble" if self.cfg.router and self.cfg.router.type in ("fixed", "uniform") else "moe"
        spec = self.cfg.experts[0]
        quant = self.pool.infos.get(spec.name, {}).get("quantization") or self._static_quantization(spec)
        if not quant:
            return "full"
        kind = str(quant.get("method", "")).lower()
        return f"gguf-{quant.get('type')}".lower() if kind == "gguf" and quant.get("type") else kind or "full"

    @staticmethod
    def _static_quantization(spec: Any) -> dict[str, Any] | None:
        from medmoe_lm_eval.harness.backends.quant_info import quantization_info

        try:
            return quantization_info(spec.model)
        except Exception:  # a hub id or an unreadable file: nothing to report
            return None

    def get_model_info(self) -> dict[str, Any]:
        """Merged by lm-eval into ``results["config"]``: candidate, experts, routing, profile."""
        self.pool.note_memory()
        self.profiler.stop()
        self.routing.close()
        self.probe.note_cache(self.cache_hook)
        profile = self._with_serving(self._merged_profile())
        profile_path = self._log_path("profile", "json")
        if profile_path is not None and profile.get("enabled", True):
            profile_path = write_json_exclusive(profile_path, profile)
        routing_path = self.routing.path if self.routing.path is not None and self.routing.path.exists() else None
        infos = {**{k: v for s in self._peers.values() for k, v in s.expert_infos.items()}, **self.pool.infos}
        experts = {
            e.name: infos.get(e.name) or {"backend": e.backend, "model": e.model, "quantization": self._static_quantization(e)} for e in self.cfg.experts
        }
        for name, batch in self._batches.items():
            experts[name] = {**experts[name], "batch": batch}
        router = self.cfg.router
        record = RunRecord(
            candidate=self.cfg.name,
            kind=self.cfg.kind,
            label=self.label(),
            adapter=dump_adapter(self.cfg),
            experts=experts,
            expert_loads=distributed.total_loads(self.pool.load_counts, self._peers.values()),
            data_parallel=distributed.rank_summary(self.dp, self.pool.load_counts, self._peers) if self.world_size > 1 else None,
            routing=RoutingSummary(
                router={"type": router.type, "top_k": router.top_k} if router else None,
                notes=self.router.notes,
                log_file=routing_path.name if routing_path else None,
                per_task=self.routing.summary(),
            ),
            profile_file=profile_path.name if profile_path is not None and profile_path.exists() else None,
            chat_template=self.chat_record(),  # whose template rendered the prompts, if one did
            medmoe_data=environment_setting(),  # where the tasks read their rows unless --metadata names a source
            version=__version__,
        )
        return {RUN_SECTION: record.to_dict(), PROFILE_SECTION: profile}

    def _with_serving(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Each expert's effective batch, and how far the experts' busy times overlapped."""
        experts = profile.get("experts")
        if not isinstance(experts, dict):
            return profile
        for name, batch in self._batches.items():
            if name in experts:
                experts[name]["batch"] = batch
        if not self._peers:  # merged ranks add their busy times up: an overlap of ranks says nothing here
            busy = {name: float(e.get("wall_s") or 0.0) for name, e in experts.items()}
            profile["serving"] = {"concurrent": self.concurrent, **overlap_summary(busy, float(profile["total"]["wall_s"]))}
        return profile

    def _merged_profile(self) -> dict[str, Any]:
        """This rank's profile, merged with the other ranks' last snapshots under data parallelism."""
        own = self.profiler.report()
        if not self._peers:
            return own
        parts = [merge.RankProfile(self.rank, self.dp.host, self.dp.device, own)]
        parts += [merge.RankProfile(s.rank, s.host, s.device, s.profile) for s in self._peers.values()]
        return merge.merge_profiles(parts)

    # -- data parallelism: what lm-eval's evaluator calls when world_size > 1 --------------------------
    @property
    def rank(self) -> int:
        return self.dp.rank

    @property
    def world_size(self) -> int:
        return self.dp.world_size

    @property
    def device(self) -> str:
        """Where the evaluator's ``all_gather`` tensors go (gloo: cpu, NCCL: this process's GPU)."""
        return self.dp.comm_device

    def all_gather(self, tensor: Any) -> Any:
        return self.dp.all_gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        return self.dp.gather_object(obj, dst)

    def barrier(self) -> None:
        """The evaluator's barrier after each request type, which every rank reaches even when its
        requests were all cached: the place where routing rows and profiles travel to rank 0."""
        if self.world_size <= 1:
            return
        mine = distributed.snapshot(self.dp, self.routing, self.profiler, self.pool)
        distributed.absorb(self.dp.gather_object(mine), self.routing, self._peers)
        self.dp.barrier()

    # -- lm-eval plumbing ---------------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return f"medmoe:{self.cfg.name}:{self.cfg.sha256}"

    def close(self) -> None:
        self.pool.close()
        self.profiler.stop()
        self.routing.close()

"""``medmoe demo``: the whole pipeline offline, from bundled texts to a ranked leaderboard.

It builds tiny stand-ins for every kind of candidate (three domain experts and a generalist of
the same size and training budget, trained briefly on the bundled real texts; a trained router;
GPTQ, AWQ and GGUF copies of the generalist; three mixtures), evaluates each through lm-eval on
the bundled task samples and the domain perplexity tasks with profiling on, then prints the
use-case rankings and the perplexity table. Builds are cached, so a second run only evaluates.

These are tiny CPU models demonstrating the pipeline, not medical advice or real model quality.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.demo.builder import DEMO_MAX_GEN_TOKS, MODELS, Candidate, DemoBuilder, DemoSettings, request_cache
from medmoe_lm_eval.demo.quiet import listening, report_console
from medmoe_lm_eval.demo.report import DISCLAIMER, print_report
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.paths import cache_dir

BENCHMARK_TASKS = [
    "medmoe_pubmedqa",
    "medmoe_medmcqa",
    "medmoe_medqa",
    "medmoe_mmlu_anatomy",
    "medmoe_mmlu_clinical_knowledge",
    "medmoe_mmlu_college_biology",
    "medmoe_mmlu_college_medicine",
    "medmoe_mmlu_medical_genetics",
    "medmoe_mmlu_professional_medicine",
    "medmoe_medquad",
    "medmoe_legal_ruleqa",
    "medmoe_lawse",
    "medmoe_mbpp",
]
PPL_TASKS = [f"medmoe_ppl_{d}" for d in DOMAINS]
DEFAULT_TASKS = [*BENCHMARK_TASKS, *PPL_TASKS]
LOG_NAME = "demo.log"


def _trained(model: str) -> Callable[[DemoBuilder], Path]:
    """Where the builder put the trained tiny model ``model``."""
    return lambda builder: builder.model(model)


def _quantized(method: str) -> Callable[[DemoBuilder], Path]:
    """Where the builder put the generalist's ``method`` copy."""
    return lambda builder: builder.quantized(method)


def _single(model: str, path_of: Callable[[DemoBuilder], Path], backend: str = "hf", parent: str | None = None) -> Callable[[DemoBuilder], dict[str, Any]]:
    """A one-expert candidate; ``parent`` names the full-precision candidate a quantized copy was made from."""

    def make(b: DemoBuilder) -> dict[str, Any]:
        expert = {"name": model, "domain": model if model in DOMAINS else "general", "backend": backend, "model": str(path_of(b)), "batch_size": 8}
        if backend == "gguf":
            expert.update(n_ctx=b.settings.spec.max_position_embeddings, n_threads=2)
        return {"kind": "single", **({"parent": parent} if parent else {}), "experts": [expert]}

    return make


def _moe(router: dict[str, Any], shared: bool = False) -> Callable[[DemoBuilder], dict[str, Any]]:
    def make(b: DemoBuilder) -> dict[str, Any]:
        experts = [{"name": d, "domain": d, "model": str(b.model(d)), "batch_size": 8} for d in DOMAINS]
        data: dict[str, Any] = {"kind": "moe", "experts": experts, "router": dict(router)}
        if router["type"] == "classifier":
            data["router"]["path"] = str(b.router())
        if shared:
            experts.append({"name": "generalist", "domain": "general", "model": str(b.model("generalist")), "batch_size": 8})
            data["shared_expert"] = {"name": "generalist", "weight": b.settings.shared_weight}
        return data

    return make


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(
            "generalist",
            "tiny generalist trained on an equal mix of the three domains",
            ("generalist",),
            _single("generalist", _trained("generalist")),
        ),
        *[Candidate(f"expert-{d}", f"tiny {d} expert", (d,), _single(d, _trained(d))) for d in DOMAINS],
        Candidate("generalist-gptq", "generalist, GPTQ 4-bit (gptqmodel)", ("quant:gptq",), _single("generalist", _quantized("gptq"), parent="generalist")),
        Candidate("generalist-awq", "generalist, AWQ 4-bit (gptqmodel)", ("quant:awq",), _single("generalist", _quantized("awq"), parent="generalist")),
        *[
            Candidate(
                f"generalist-{m}",
                f"generalist as GGUF {m.split('-')[1]} (llama.cpp)",
                (f"quant:{m}",),
                _single("generalist", _quantized(m), backend="gguf", parent="generalist"),
            )
            for m in ("gguf-f16", "gguf-q8_0", "gguf-q4_0")
        ],
        Candidate("moe-top1", "three experts, trained TF-IDF router, top-1", (*DOMAINS, "router"), _moe({"type": "classifier", "top_k": 1})),
        Candidate(
            "moe-top2-shared",
            "three experts, trained router, top-2 plus the generalist as shared expert",
            (*MODELS, "router"),
            _moe({"type": "classifier", "top_k": 2}, shared=True),
        ),
        Candidate("moe-oracle", "three experts routed by the task's own domain (upper bound)", DOMAINS, _moe({"type": "oracle", "top_k": 1})),
    ]
}


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidates", default="all", help=f"comma-separated subset of: {', '.join(CANDIDATES)} (default all)")
    parser.add_argument(
        "--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated lm-eval tasks or groups (default: the task suite and the perplexity tasks)"
    )
    parser.add_argument("--limit", type=float, default=20, help="documents per task, lm-eval's --limit (default 20)")
    parser.add_argument("--results", default="results/demo", help="where the runs land (default results/demo)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--train-steps", type=int, default=DemoSettings.train_steps, help="training steps per tiny model (default 150)")
    parser.add_argument(
        "--max-gen-toks",
        type=int,
        default=DEMO_MAX_GEN_TOKS,
        help=f"cap on generated tokens per answer (default {DEMO_MAX_GEN_TOKS}; the tasks allow up to 512, which tiny models only fill with noise)",
    )
    parser.add_argument("--use-cache", action="store_true", help="cache model answers so an interrupted demo resumes where it stopped")
    parser.add_argument("--verbose", action="store_true", help=f"print the libraries' own log lines and progress bars too (default: into <results>/{LOG_NAME})")


def _selected(value: str) -> list[Candidate]:
    names = list(CANDIDATES) if value == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        from medmoe_lm_eval.harness.config import ConfigError

        raise ConfigError("--candidates", "candidates", f"unknown candidate(s) {unknown}", f"choose from {', '.join(CANDIDATES)}")
    return [CANDIDATES[n] for n in names]


def _progress(console: Console) -> Progress:
    # the libraries' own prints must reach the log, not the console, so rich redirects nothing
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, redirect_stdout=False, redirect_stderr=False
    )


def _candidate_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def run(args: argparse.Namespace) -> int:
    from medmoe_lm_eval.cli.eval import check_output_dir

    candidates = _selected(args.candidates)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = Path(args.results)
    check_output_dir(out)  # a read-only or full folder is reported before anything is built
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    started = time.perf_counter()
    with report_console(out / LOG_NAME, args.verbose) as console:
        console.rule("medmoe demo")
        console.print(f"[yellow]{DISCLAIMER}[/]")
        with _progress(console) as progress:
            builder = DemoBuilder(DemoSettings(train_steps=args.train_steps), cache_dir(), progress)
            adapters = {c.name: _write_adapter(builder.root / "adapters", builder.build(c), out / "adapters") for c in candidates}
        console.print(f"built {len(adapters)} candidates in {time.perf_counter() - started:.0f} s (cache: {builder.root})")
        runs, failed = _evaluate_all(candidates, adapters, tasks, out, args, console)
        console.rule("results")
        print_report(out, runs, console)
        for name, reason in failed.items():
            console.print(f"[red]not evaluated:[/] {name}: {reason}")
        console.print(f"demo finished in {time.perf_counter() - started:.0f} s; results in {out}/")
        if not args.verbose:
            console.print(f"library output (lm-eval, transformers, gptqmodel, llama.cpp): {out / LOG_NAME} (--verbose prints it here instead)")
        console.print(f"open the leaderboard: [bold]medmoe leaderboard --results {out}[/]")
    return 1 if failed else 0


def _evaluate_all(
    candidates: list[Candidate], adapters: dict[str, Path], tasks: list[str], out: Path, args: argparse.Namespace, console: Console
) -> tuple[dict[str, Path], dict[str, str]]:
    """Each candidate through lm-eval; one failing must not cost the others' results."""
    runs: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for i, candidate in enumerate(candidates, start=1):
        with _candidate_progress(console) as progress:
            try:
                runs[candidate.name] = _evaluate_one(
                    candidate.name, f"[{i}/{len(candidates)}] {candidate.name}", adapters[candidate.name], tasks, out, args, progress
                )
            except BackendError as exc:
                failed[candidate.name] = str(exc)
    return runs, failed


def _evaluate_one(name: str, label: str, adapter: Path, tasks: list[str], out: Path, args: argparse.Namespace, progress: Progress) -> Path:
    """One progress line: the request type lm-eval is running, then what the run did."""
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    line = progress.add_task(f"{label}: loading tasks", total=None)

    def on_stage(rtype: str) -> None:
        progress.update(line, description=f"{label}: {rtype} requests")

    limit = args.limit if args.limit != int(args.limit) else int(args.limit)
    cache = request_cache(out / ".cache", adapter) if args.use_cache else None
    try:
        with listening(on_stage):
            path, results = evaluate_candidate(
                adapter, tasks, out, name, limit=limit, device=args.device, use_cache=cache, gen_kwargs={"max_gen_toks": args.max_gen_toks}
            )
    except BackendError:
        progress.update(line, description=f"[red]{label}: failed (the reason follows the report)[/]")
        raise
    total = ((results.get("config") or {}).get("medmoe_profile") or {}).get("total") or {}
    done = f"{len(results.get('results', {}))} tasks" + (f", {total['requests']} requests" if "requests" in total else "")
    progress.update(line, description=f"{label}: {done}", total=1, completed=1)
    return path


def _write_adapter(folder: Path, data: dict[str, Any], copy_to: Path) -> Path:
    """The adapter that runs lives beside the models it names, outside the results folder (which
    is data others may share, and the board never runs an adapter found inside it); a copy goes
    into the results for readers."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    copy_to.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, copy_to / path.name)
    return path

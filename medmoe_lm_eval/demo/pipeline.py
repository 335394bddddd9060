"""``medmoe demo``: the whole pipeline offline, from installed models to a ranked leaderboard.

By default it ranks real candidates: SmolLM2-135M-Instruct as its users run it (the upstream Q4_1
GGUF through llama.cpp), its float32 parent (the same file dequantized, through transformers), its
q8_0 and q4_0 copies made by ``medmoe quantize``, Gemma 3 270M, and three mixtures of the two models
(the shipped router, the oracle, a uniform ensemble); ``real_candidates`` says how each is made.
Each runs through lm-eval on a few items of every bundled task sample (generation tasks included)
and the domain perplexity tasks, with profiling on; the report ranks them per use case, shows each
copy's fidelity to its parent and the router's scorecard. Builds are cached, so a second run only
evaluates. ``--tiny`` runs the same pipeline on tiny models trained in seconds (``tiny_candidates``).

Two small models measured on a handful of items: not medical advice, and not a verdict on larger models.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.demo.builder import DEMO_MAX_GEN_TOKS, BuildCache, Candidate, DemoBuilder, DemoSettings, request_cache
from medmoe_lm_eval.demo.quiet import listening, report_console
from medmoe_lm_eval.demo.real_build import RealBuilder
from medmoe_lm_eval.demo.report import DISCLAIMER, REAL_DISCLAIMER, print_report
from medmoe_lm_eval.demo.report_real import print_models
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.paths import cache_dir
from medmoe_lm_eval.store.profiles import profile_of

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
GENERATION_TASKS = ("medmoe_medquad", "medmoe_legal_ruleqa", "medmoe_lawse", "medmoe_mbpp")
PPL_TASKS = [f"medmoe_ppl_{d}" for d in DOMAINS]
DEFAULT_TASKS = [*BENCHMARK_TASKS, *PPL_TASKS]
LOG_NAME = "demo.log"
#: items per task on the real models, chosen so the whole demo fits 10 minutes on 2 cores:
#: multiple choice is a few forward passes per item, a generated answer up to --max-gen-toks steps
REAL_ITEMS = {"multiple_choice": 3, "generation": 1, "perplexity": 2}
TINY_LIMIT = 20


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from medmoe_lm_eval.demo import real_candidates, tiny_candidates

    real = ", ".join([*real_candidates.CANDIDATES, *real_candidates.EXTRA])
    parser.add_argument(
        "--candidates",
        default="all",
        help=f"comma-separated subset of: {real} (default all but {', '.join(real_candidates.EXTRA)}); with --tiny: {', '.join(tiny_candidates.CANDIDATES)}",
    )
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated lm-eval tasks (default: the task suite and the perplexity tasks)")
    items = ", ".join(f"{n} {kind}" for kind, n in REAL_ITEMS.items())
    parser.add_argument("--limit", type=float, default=None, help=f"documents per task, lm-eval's --limit (default: {items}; {TINY_LIMIT} with --tiny)")
    parser.add_argument("--results", default="results/demo", help="where the runs land (default results/demo)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--tiny", action="store_true", help="tiny models trained in seconds instead of the real ones (a fast check of the pipeline)")
    parser.add_argument("--train-steps", type=int, default=DemoSettings.train_steps, help="with --tiny: training steps per tiny model (default 150)")
    parser.add_argument(
        "--max-gen-toks",
        type=int,
        default=DEMO_MAX_GEN_TOKS,
        help=f"cap on generated tokens per answer (default {DEMO_MAX_GEN_TOKS}; the tasks allow up to 512, which would take minutes per answer here)",
    )
    parser.add_argument("--use-cache", action="store_true", help="cache model answers so an interrupted demo resumes where it stopped")
    parser.add_argument("--verbose", action="store_true", help=f"print the libraries' own log lines and progress bars too (default: into <results>/{LOG_NAME})")


def _catalogue(tiny: bool) -> tuple[dict[str, Candidate], dict[str, Candidate]]:
    """The mode's candidates: those ``all`` means, and the opt-in ones."""
    if tiny:
        from medmoe_lm_eval.demo.tiny_candidates import CANDIDATES

        return CANDIDATES, {}
    from medmoe_lm_eval.demo.real_candidates import CANDIDATES, EXTRA

    return CANDIDATES, EXTRA


def _selected(value: str, tiny: bool) -> list[Candidate]:
    default, extra = _catalogue(tiny)
    known = {**default, **extra}
    names = list(default) if value == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        from medmoe_lm_eval.harness.config import ConfigError

        mode = "--tiny " if tiny else ""
        raise ConfigError("--candidates", "candidates", f"unknown {mode}candidate(s) {unknown}", f"choose from {', '.join(known)}")
    return [known[n] for n in names]


def task_items(tasks: list[str], limit: float | None, tiny: bool) -> dict[str, int | float]:
    """Documents per task: ``--limit`` for all, else the real demo's count for the task's kind."""
    if limit is not None or tiny:
        value = TINY_LIMIT if limit is None else limit
        return dict.fromkeys(tasks, int(value) if value == int(value) else value)
    kind = {**dict.fromkeys(GENERATION_TASKS, "generation"), **dict.fromkeys(PPL_TASKS, "perplexity")}
    return {t: REAL_ITEMS[kind.get(t, "multiple_choice")] for t in tasks}


def _builder(args: argparse.Namespace, progress: Progress) -> BuildCache:
    if args.tiny:
        return DemoBuilder(DemoSettings(train_steps=args.train_steps), cache_dir(), progress)
    return RealBuilder(cache_dir(), progress)


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

    candidates = _selected(args.candidates, args.tiny)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    items = task_items(tasks, args.limit, args.tiny)
    out = Path(args.results)
    check_output_dir(out)  # a read-only or full folder is reported before anything is built
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    started = time.perf_counter()
    with report_console(out / LOG_NAME, args.verbose) as console:
        console.rule("medmoe demo" + (" (tiny models)" if args.tiny else ""))
        console.print(f"[yellow]{DISCLAIMER if args.tiny else REAL_DISCLAIMER}[/]")
        with _progress(console) as progress:
            builder = _builder(args, progress)
            adapters = {c.name: _write_adapter(builder.root / "adapters", builder.build(c), out / "adapters") for c in candidates}
            builder.finish()
        console.print(f"built {len(adapters)} candidates in {time.perf_counter() - started:.0f} s (cache: {builder.root})", soft_wrap=True)
        if isinstance(builder, RealBuilder):
            print_models(builder.files.values(), console)
        console.print(_items_line(items, args.max_gen_toks))
        runs, failed = _evaluate_all(candidates, adapters, items, out, args, console)
        console.rule("results")
        print_report(out, runs, console, tiny=args.tiny)
        for name, reason in failed.items():
            console.print(f"[red]not evaluated:[/] {name}: {reason}")
        console.print(f"demo finished in {time.perf_counter() - started:.0f} s; results in {out}/", soft_wrap=True)
        if not args.verbose:
            console.print(f"library output (lm-eval, transformers, gptqmodel, llama.cpp): {out / LOG_NAME} (--verbose prints it here instead)", soft_wrap=True)
        console.print(f"open the leaderboard: [bold]medmoe leaderboard --results {out}[/]", soft_wrap=True)
    return 1 if failed else 0


def _items_line(items: dict[str, int | float], max_gen_toks: int) -> str:
    """What each candidate answers, grouped by count: '8 items: medmoe_pubmedqa, ...'."""
    groups: dict[int | float, list[str]] = {}
    for task, n in items.items():
        groups.setdefault(n, []).append(task.removeprefix("medmoe_"))
    parts = [f"{n} each of {', '.join(names)}" for n, names in groups.items()]
    return f"items per candidate: {'; '.join(parts)} (answers capped at {max_gen_toks} tokens)"


def _evaluate_all(
    candidates: list[Candidate], adapters: dict[str, Path], items: dict[str, int | float], out: Path, args: argparse.Namespace, console: Console
) -> tuple[dict[str, Path], dict[str, str]]:
    """Each candidate through lm-eval; one failing must not cost the others' results."""
    runs: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for i, candidate in enumerate(candidates, start=1):
        with _candidate_progress(console) as progress:
            try:
                label = f"[{i}/{len(candidates)}] {candidate.name}"
                runs[candidate.name] = _evaluate_one(candidate.name, label, adapters[candidate.name], items, out, args, progress)
            except BackendError as exc:
                failed[candidate.name] = str(exc)
    return runs, failed


def _evaluate_one(name: str, label: str, adapter: Path, items: dict[str, int | float], out: Path, args: argparse.Namespace, progress: Progress) -> Path:
    """One progress line: the request type lm-eval is running, then what the run did."""
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    line = progress.add_task(f"{label}: loading tasks", total=None)

    def on_stage(rtype: str) -> None:
        progress.update(line, description=f"{label}: {rtype} requests")

    cache = request_cache(out / ".cache", adapter) if args.use_cache else None
    try:
        with listening(on_stage):
            path, results = evaluate_candidate(
                adapter, list(items), out, name, limit=items, device=args.device, use_cache=cache, gen_kwargs={"max_gen_toks": args.max_gen_toks}
            )
    except BackendError:
        progress.update(line, description=f"[red]{label}: failed (the reason follows the report)[/]")
        raise
    total = (profile_of(results) or {}).get("total") or {}
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

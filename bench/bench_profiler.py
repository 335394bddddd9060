"""What profiling costs: the hot path, the sampler thread, and a whole lm-eval run on vs off.

Three measurements, each printed as a table:

1. ``track()``: microseconds per call, enabled vs disabled (the hot path around every batch).
2. The sampler: CPU seconds its thread uses per wall second at each interval, and the wall-time
   ratio of a fixed number of real tiny-Llama forward passes with the profiler on vs off.
3. lm-eval end to end: ``lm_eval.simple_evaluate(model="medmoe", model_args={"adapter": ...,
   "profile": True/False})`` on a small task suite (multiple choice, generation and rolling
   loglikelihood built from the bundled samples, or ``--tasks`` with ``--include-path``),
   interleaving on and off; the target is a wall ratio <= 1.02 with identical metrics. The
   serving probe is off here (``probe=0``), so this is the profiler's own cost.
4. The serving probe (single-stream latency, ``probe=N`` prompts per task after a warm-up): the
   same lm-eval run with ``probe=4`` vs ``probe=0``, its added wall time per run and per task,
   and the single-stream figures it measured (TTFT, TPOT, E2E p50/p95).

Run: ``python bench/bench_profiler.py 2>/dev/null`` (about two minutes on two cores; ``--quick``
for less; stderr carries lm-eval's progress bars). On a machine shared with other work, trust
the best-of and CPU columns over the medians: other processes only ever add wall time.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before anything imports tqdm: it reads this once

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medmoe_lm_eval.paths import bundled_data_dir
from medmoe_lm_eval.profiling.profiler import Profiler

console = Console(width=140)
TARGET_RATIO = 1.02


# -- fixtures built on the spot (no hub) -----------------------------------------------------------


def _texts(n: int = 400) -> list[str]:
    texts: list[str] = []
    for path in sorted(bundled_data_dir().glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += list(itertools.islice(fh, n // 4))
    return texts


def build_model(root: Path) -> Path:
    from medmoe_lm_eval.testing.tiny import TinySpec, build_tiny_model

    return build_tiny_model(root / "model", _texts(), TinySpec(seed=0))


def write_adapter(root: Path, model_dir: Path) -> Path:
    path = root / "adapter.yaml"
    path.write_text(f"name: bench-tiny\nkind: single\nexperts:\n  - name: bio\n    model: {model_dir}\n    device: cpu\n    batch_size: 8\n")
    return path


_SUITE = {
    "bench_prof_mcqa": """
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}/medmcqa.jsonl}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{[opa, opb, opc, opd]}}}}"
doc_to_target: cop
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
""",
    "bench_prof_gen": """
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}/legal_ruleqa.jsonl}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 16, do_sample: false}}
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
""",
    "bench_prof_ppl": """
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}/medquad.jsonl}}}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{Answer[:600]}}}}"
metric_list: [{{metric: word_perplexity, higher_is_better: false}}, {{metric: bits_per_byte, higher_is_better: false}}]
""",
}


def write_suite(root: Path) -> tuple[Path, list[str]]:
    """Three tasks covering the three request types, reading the bundled samples."""
    folder = root / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in _SUITE.items():
        (folder / f"{name}.yaml").write_text(f"task: {name}\n" + body.format(data=bundled_data_dir()).lstrip())
    return folder, list(_SUITE)


# -- 1. the hot path --------------------------------------------------------------------------------


def bench_track(n: int, rounds: int = 5) -> list[tuple[str, float]]:
    """Best of ``rounds`` (other processes on the machine only ever add time)."""
    best = {True: float("inf"), False: float("inf")}
    for _ in range(rounds):
        for enabled in (True, False):
            prof = Profiler(interval_ms=100, enabled=enabled)
            prof.start()
            t0 = time.perf_counter()
            for _ in range(n):
                with prof.track(expert="e", request_type="loglikelihood", task="t", n_requests=1, prompt_tokens=1):
                    pass
            best[enabled] = min(best[enabled], (time.perf_counter() - t0) / n * 1e6)
            prof.stop()
    return [("enabled", best[True]), ("disabled", best[False])]


# -- 2. the sampler on real forward passes ------------------------------------------------------------


def _forward_loop(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    enc = tok([t[:400] for t in _texts(32)[:8]], return_tensors="pt", padding=True)

    def run(prof: Profiler, passes: int) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(passes):
            with (
                prof.track(expert="bio", request_type="loglikelihood", task="t", n_requests=8, prompt_tokens=int(enc["attention_mask"].sum())),
                torch.no_grad(),
            ):
                model(**enc)
        return time.perf_counter() - t0, time.process_time() - c0

    return run


def _ratios(on: list[tuple[float, float]], off: list[tuple[float, float]]) -> dict[str, float]:
    """On/off from ``(wall, process CPU)`` pairs: wall best-vs-best and paired median, and CPU.

    The machine is shared, so runs are interleaved (on/off, then off/on) and several figures are
    given: other processes only ever add wall time, which the minimum filters out, and they do
    not add to this process's CPU time (which includes the sampler thread's).
    """
    wall_on, wall_off = [w for w, _ in on], [w for w, _ in off]
    cpu_on, cpu_off = [c for _, c in on], [c for _, c in off]
    return {
        "wall_on_s": min(wall_on),
        "wall_off_s": min(wall_off),
        "ratio_min": min(wall_on) / min(wall_off),
        "ratio_median": statistics.median(a / b for a, b in zip(wall_on, wall_off, strict=True)),
        "cpu_ratio": min(cpu_on) / min(cpu_off),
    }


def bench_sampler(model_dir: Path, intervals: list[float], passes: int, repeats: int) -> list[dict[str, Any]]:
    run = _forward_loop(model_dir)
    run(Profiler(enabled=False), 3)  # warm-up
    rows = []
    for interval in intervals:
        on, off, cpu, samples = [], [], [], []
        for i in range(repeats):
            for enabled in (True, False) if i % 2 == 0 else (False, True):
                prof = Profiler(interval_ms=interval, enabled=enabled)
                prof.start()
                (on if enabled else off).append(run(prof, passes))
                prof.stop()
                if enabled:
                    rep = prof.report()
                    cpu.append(rep["sampler"]["cpu_s"] / rep["wall_s"])
                    samples.append(rep["sampler"]["samples"] / rep["wall_s"])
        rows.append({"interval_ms": interval, "sampler_cpu_per_s": statistics.median(cpu), "samples_per_s": statistics.median(samples), **_ratios(on, off)})
    return rows


# -- 3. lm-eval end to end --------------------------------------------------------------------------


def bench_lmeval(adapter: Path, include_path: Path, tasks: list[str], limit: int | None, repeats: int) -> dict[str, Any]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from medmoe_lm_eval._lmeval_hook import register

    register()
    manager = TaskManager(include_path=str(include_path))

    def once(profile: bool) -> tuple[tuple[float, float], dict[str, Any], dict[str, Any] | None]:
        t0, c0 = time.perf_counter(), time.process_time()
        out = lm_eval.simple_evaluate(
            model="medmoe",
            model_args={"adapter": str(adapter), "profile": profile, "probe": 0},
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            device="cpu",
            log_samples=False,
        )
        return (time.perf_counter() - t0, time.process_time() - c0), out["results"], out["config"].get("medmoe_profile")

    once(True)  # warm-up: datasets into the cache, lazy imports
    walls: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    results: dict[bool, dict[str, Any]] = {}
    profile = None
    for i in range(repeats):
        for flag in (True, False) if i % 2 == 0 else (False, True):
            wall, res, prof = once(flag)
            walls[flag].append(wall)
            results[flag] = res
            profile = prof if flag else profile
    return {
        **_ratios(walls[True], walls[False]),
        "identical_metrics": json.dumps(results[True], sort_keys=True, default=str) == json.dumps(results[False], sort_keys=True, default=str),
        "requests": (profile or {}).get("total", {}).get("requests"),
        "sampler_cpu_s": (profile or {}).get("sampler", {}).get("cpu_s"),
        "profile_wall_s": (profile or {}).get("wall_s"),
    }


# -- 4. the serving probe ------------------------------------------------------------------------------


def bench_probe(adapter: Path, include_path: Path, tasks: list[str], limit: int | None, repeats: int, prompts: int = 4) -> dict[str, Any]:
    """Wall time of a profiled lm-eval run with the probe on (``prompts``) and off, interleaved."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from medmoe_lm_eval._lmeval_hook import register

    register()
    manager = TaskManager(include_path=str(include_path))

    def once(n: int) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model="medmoe", model_args={"adapter": str(adapter), "probe": n}, tasks=tasks, task_manager=manager, limit=limit, device="cpu", log_samples=False
        )
        return time.perf_counter() - t0, out["config"]["medmoe_profile"]

    once(prompts)  # warm-up
    walls: dict[int, list[float]] = {prompts: [], 0: []}
    stream: dict[str, Any] = {}
    for i in range(repeats):
        for n in (prompts, 0) if i % 2 == 0 else (0, prompts):
            wall, profile = once(n)
            walls[n].append(wall)
            stream = profile.get("single_stream") or stream
    added = min(walls[prompts]) - min(walls[0])
    return {
        "prompts": prompts,
        "wall_on_s": min(walls[prompts]),
        "wall_off_s": min(walls[0]),
        "added_s": added,
        "probed_tasks": len(stream),
        "single_stream": stream,
    }


def _print_probe(r: dict[str, Any]) -> None:
    table = Table(title=f"Serving probe: {r['prompts']} prompts per task after 1 warm-up (best of runs)", title_justify="left")
    for col in ("probe on s", "probe off s", "added s", "added s per probed task"):
        table.add_column(col, justify="right")
    per_task = r["added_s"] / r["probed_tasks"] if r["probed_tasks"] else float("nan")
    table.add_row(f"{r['wall_on_s']:.2f}", f"{r['wall_off_s']:.2f}", f"{r['added_s']:.2f}", f"{per_task:.2f}")
    console.print(table)
    figures = Table(title="Single-stream latency measured by the probe (ms)", title_justify="left")
    for col in ("task", "streamed", "TTFT p50", "TPOT p50", "E2E p50", "E2E p95", "router p50"):
        figures.add_column(col, justify="right")
    for task, s in sorted(r["single_stream"].items()):
        cells = (s["ttft_ms"]["p50"], s["tpot_ms"]["p50"], s["e2e_ms"]["p50"], s["e2e_ms"]["p95"], s["router_ms"]["p50"])
        figures.add_row(task, str(s["streamed"]), *("-" if v is None else f"{v:.2f}" for v in cells))
    console.print(figures)


# -- output -------------------------------------------------------------------------------------------


def _print_track(rows: list[tuple[str, float]]) -> None:
    table = Table(title="track() per call", title_justify="left")
    table.add_column("profiler")
    table.add_column("us/call", justify="right")
    for name, us in rows:
        table.add_row(name, f"{us:.2f}")
    console.print(table)


def _print_sampler(rows: list[dict[str, Any]], passes: int) -> None:
    table = Table(title=f"Sampler on {passes} tiny-Llama forward passes (batch 8)", title_justify="left")
    for col in ("interval ms", "sampler CPU s/s", "samples/s", "best on s", "best off s", "on/off best", "on/off median", "CPU on/off"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['interval_ms']:.0f}",
            f"{r['sampler_cpu_per_s']:.5f}",
            f"{r['samples_per_s']:.1f}",
            f"{r['wall_on_s']:.3f}",
            f"{r['wall_off_s']:.3f}",
            f"{r['ratio_min']:.4f}",
            f"{r['ratio_median']:.4f}",
            f"{r['cpu_ratio']:.4f}",
        )
    console.print(table)


def _print_lmeval(r: dict[str, Any], tasks: list[str], limit: int | None) -> None:
    table = Table(title=f"lm-eval {', '.join(tasks)} (limit {limit})", title_justify="left")
    for col in (
        "requests",
        "best on s",
        "best off s",
        "on/off best",
        "on/off median",
        "CPU on/off",
        f"<= {TARGET_RATIO}",
        "identical metrics",
        "sampler CPU s",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        str(r["requests"]),
        f"{r['wall_on_s']:.2f}",
        f"{r['wall_off_s']:.2f}",
        f"{r['ratio_min']:.4f}",
        f"{r['ratio_median']:.4f}",
        f"{r['cpu_ratio']:.4f}",
        "yes" if r["ratio_min"] <= TARGET_RATIO else "no",
        "yes" if r["identical_metrics"] else "NO",
        f"{r['sampler_cpu_s']:.4f}" if r["sampler_cpu_s"] is not None else "-",
    )
    console.print(table)


def _quiet() -> None:
    """Keep the tables readable: lm-eval, datasets and transformers log per task and per run."""
    import logging

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("lm_eval", "datasets", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    ap.add_argument("--intervals", type=float, nargs="+", default=[50.0, 100.0], help="sampling intervals in ms")
    ap.add_argument("--passes", type=int, default=150, help="forward passes per sampler measurement (about 1 s here)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tasks", nargs="+", help="lm-eval tasks (default: a bundled three-task suite)")
    ap.add_argument("--include-path", help="folder of task YAMLs for --tasks")
    ap.add_argument("--limit", type=int, default=20, help="documents per task in the lm-eval run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a shared machine)")
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    _quiet()
    import torch

    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_profiler_") as tmp:
        root = Path(tmp)
        figures["track_us"] = dict(bench_track(20_000 if args.quick else 200_000))
        _print_track(list(figures["track_us"].items()))
        model_dir = build_model(root)
        figures["sampler"] = bench_sampler(model_dir, args.intervals, args.passes // (3 if args.quick else 1), repeats)
        _print_sampler(figures["sampler"], args.passes // (3 if args.quick else 1))
        if not args.skip_lmeval:
            if args.tasks:
                include, tasks = Path(args.include_path or "tasks"), args.tasks
            else:
                include, tasks = write_suite(root)
            limit = max(4, args.limit // 4) if args.quick else args.limit
            figures["lmeval"] = bench_lmeval(write_adapter(root, model_dir), include, tasks, limit, repeats)
            _print_lmeval(figures["lmeval"], tasks, limit)
            figures["probe"] = bench_probe(write_adapter(root, model_dir), include, tasks, limit, repeats)
            _print_probe(figures["probe"])
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What kernel isolation costs MBPP: wall time for N programs under each sandbox layer.

The programs are the bundled MBPP reference solutions with their asserts (``mbpp.jsonl`` and
``mbpp_prompt.jsonl``), repeated to N (500 = MBPP's test split), run exactly as lm-eval scoring
runs them (``run_programs`` on a pool as wide as the CPUs). For each layer it prints the wall
time, programs per second, how many passed (all should), and the per-program start-up cost:
the median time to run an empty program, minus the same under the inner layer alone. The target
is MBPP's 500 programs in under 60 s on 2 cores under the kernel layer.

Run: ``python bench/bench_sandbox.py`` (``-n 100`` for a quick look; ``--layers bwrap,off``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

from rich.console import Console
from rich.table import Table

from medmoe_lm_eval.benchmarks import isolation
from medmoe_lm_eval.benchmarks.isolation import Isolation
from medmoe_lm_eval.benchmarks.metrics import MBPP_LIMITS, mbpp_program
from medmoe_lm_eval.benchmarks.rows import read_jsonl
from medmoe_lm_eval.benchmarks.sandbox import cpu_workers, run_program, run_programs
from medmoe_lm_eval.paths import bundled_data_dir

console = Console(width=120)
TARGET_S = 60.0
MECHANISM = {"bwrap": "bwrap", "unshare": "unshare", "off": "none"}


def reference_programs(n: int) -> list[str]:
    """The bundled MBPP reference solutions with their asserts, cycled to ``n`` programs."""
    docs = [*read_jsonl(bundled_data_dir() / "mbpp.jsonl"), *read_jsonl(bundled_data_dir() / "mbpp_prompt.jsonl")]
    programs = [mbpp_program(doc, doc["code"]) for doc in docs]
    return list(itertools.islice(itertools.cycle(programs), n))


def startup_ms(how: Isolation, repeats: int = 15) -> float:
    """Median wall time of one empty program, one at a time (no pool contention)."""
    run_program("pass\n", MBPP_LIMITS, how)  # warm the page cache
    return statistics.median(run_program("pass\n", MBPP_LIMITS, how).duration_s for _ in range(repeats)) * 1000


def measure(layer: str, programs: list[str]) -> dict[str, float]:
    how = Isolation(MECHANISM[layer])
    start = time.perf_counter()
    results = run_programs(programs, MBPP_LIMITS, how=how)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "passed": sum(r.passed for r in results), "startup_ms": startup_ms(how)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="programs per layer (default 500, MBPP's test split)")
    parser.add_argument("--layers", default="bwrap,unshare,off", help="comma-separated: bwrap, unshare, off")
    args = parser.parse_args()
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    programs = reference_programs(args.n)
    load = os.getloadavg()[0]  # other work on the machine only ever adds wall time
    table = Table(title=f"MBPP sandbox: {args.n} reference programs on {cpu_workers()} CPUs, load {load:.1f} (target < {TARGET_S:.0f} s)")
    for column in ("layer", "sandbox", "wall s", "programs/s", "passed", "empty program ms", "isolation start-up ms"):
        table.add_column(column, justify="right" if column not in ("layer", "sandbox") else "left")
    rows = {}
    for layer in layers:
        if layer != "off" and not isolation.works(layer):
            console.print(f"[yellow]{layer}: skipped ({isolation.probe_error(layer)})")
            continue
        rows[layer] = measure(layer, programs)
    base = rows["off"]["startup_ms"] if "off" in rows else None
    for layer, row in rows.items():
        extra = "-" if base is None or layer == "off" else f"{row['startup_ms'] - base:.1f}"
        sandbox = Isolation(MECHANISM[layer]).sandbox
        table.add_row(
            layer, sandbox, f"{row['wall_s']:.1f}", f"{args.n / row['wall_s']:.0f}", f"{row['passed']:.0f}/{args.n}", f"{row['startup_ms']:.1f}", extra
        )
    console.print(table)


if __name__ == "__main__":
    main()

"""``medmoe demo`` wall time, CPU time, peak RSS and console lines, cold (empty build cache) and warm (cache reused).

    python bench/bench_demo.py [--keep DIR] [-- extra demo arguments]

Targets: the whole demo in at most 10 minutes on 2 CPU cores, and a report of at most 150 lines
when its output is piped. The demo runs as a child process; its peak RSS is the kernel's maximum
resident set of that child, its CPU time the user + system time of the child and its own children
(``getrusage``). On a shared machine the wall time depends on the others' load: the 1-minute load
average before and after is printed with it, and the CPU time is what the demo itself consumed.
The cold run's cache is empty, so it also fetches the real models (``medmoe models fetch``) into it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(cache: Path, results: Path, extra: list[str]) -> tuple[float, float, float, int, int]:
    """One demo in a child process: wall and CPU seconds, the child's peak RSS (MiB), console lines, exit status."""
    env = {**os.environ, "MEDMOE_CACHE": str(cache)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "medmoe_lm_eval", "demo", "--results", str(results), *extra], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = len(proc.stdout.splitlines()) + len(proc.stderr.splitlines())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, lines, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="folder for the cache and results (default: a temporary folder)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one run in a fresh process
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.one:
        root = Path(args.keep)
        load = os.getloadavg()[0]
        wall, cpu, peak_mib, lines, rc = run_demo(root / "cache", root / f"results-{args.one}", extra)
        print(
            f"{args.one}: {wall:6.1f} s wall (target <= 600 s), {cpu:6.1f} s CPU, load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores,"
            f" peak RSS {peak_mib:7.1f} MiB, {lines} console lines (target <= 150), exit {rc}",
            flush=True,
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        for label in ("cold", "warm"):  # a fresh measuring process each, so peaks do not carry over
            subprocess.run([sys.executable, __file__, "--one", label, "--keep", root, *extra], check=False)


if __name__ == "__main__":
    main()

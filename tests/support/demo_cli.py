"""Running ``medmoe demo`` as its user does, in a child process, for the end-to-end demo tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def demo(out: Path, cache: Path | None, *args: str) -> subprocess.CompletedProcess:
    # an 80-column terminal, the narrowest common one, whatever runs the suite (a tty, a pipe, a worker)
    env = {**os.environ, "COLUMNS": "80", **({"MEDMOE_CACHE": str(cache)} if cache else {})}
    cmd = [sys.executable, "-m", "medmoe_lm_eval", "demo", "--results", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)


def latest_runs(out: Path, names: list[str]) -> dict[str, Path]:
    return {c: sorted((out / c).glob("results_*.json"))[-1] for c in names}


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps lines at the terminal width

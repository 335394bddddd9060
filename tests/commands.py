"""Command lines the tests run in a subprocess, written once so every test runs the same CLI."""

from __future__ import annotations

import sys
from pathlib import Path


def eval_cmd(adapter_path: str | Path, out: str | Path, tasks: str, *extra: str) -> list[str]:
    """``medmoe eval`` (lm-eval's CLI with medmoe registered) on one adapter, results under ``out``."""
    return [
        sys.executable,
        "-m",
        "medmoe_lm_eval",
        "eval",
        "--model",
        "medmoe",
        "--model_args",
        f"adapter={adapter_path}",
        "--tasks",
        tasks,
        "--output_path",
        str(out),
        *extra,
    ]

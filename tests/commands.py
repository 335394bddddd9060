"""What several tests build the same way, written once: the ``medmoe eval`` command line and adapter files."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


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


def write_adapter(folder: Path, name: str, data: dict) -> Path:
    """``<folder>/<name>.yaml``: an adapter named ``name`` with the fields in ``data``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}), encoding="utf-8")
    return path

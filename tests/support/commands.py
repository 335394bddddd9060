"""What several tests build the same way, written once: the ``medmoe eval`` command line, adapter
files, and a program run on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
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


def on_a_terminal(argv: list[str], env: dict[str, str], columns: int, rows: int = 50, stderr_too: bool = True, timeout: float = 300) -> str:
    """What ``argv`` prints on a pseudo-terminal ``columns`` wide (stdout, and stderr when ``stderr_too``)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower if stderr_too else subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    proc.wait(timeout=timeout)
    return b"".join(chunks).decode("utf-8", errors="replace")

"""CLI tables use the terminal's width on a terminal and a wide fixed width when piped, for every command.

Checked on real processes: one whose standard output is a pseudo-terminal of a known size, one
whose output is a pipe; and on the code: every module that prints for a command builds its
console through ``cli_console`` (never ``rich.console.Console`` itself).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from commands import on_a_terminal

from medmoe_lm_eval.console import LOG_WIDTH
from medmoe_lm_eval.paths import PACKAGE_DIR

REPO = Path(__file__).resolve().parents[2]
PRINT_WIDTH = "from medmoe_lm_eval.console import cli_console; print(cli_console().width)"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return env


def test_piped_output_gets_the_wide_fixed_width():
    proc = subprocess.run([sys.executable, "-c", PRINT_WIDTH], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.stdout.strip() == str(LOG_WIDTH)


def test_a_terminal_gets_its_own_width():
    out = on_a_terminal([sys.executable, "-c", PRINT_WIDTH], _env(), columns=97, rows=30, stderr_too=False, timeout=60)
    assert out.strip() == "97"


def _console_calls(path: Path) -> list[int]:
    """Lines where ``path`` calls ``Console(...)`` (rich's class) directly."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Console"
    ]


COMMAND_MODULES = sorted([*(PACKAGE_DIR / "cli").glob("*.py"), *(PACKAGE_DIR / "demo").glob("*.py"), PACKAGE_DIR / "profiling" / "render.py"])


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_every_command_prints_through_cli_console(path):
    assert _console_calls(path) == [], f"{path}: build the console with medmoe_lm_eval.console.cli_console"


def test_the_check_finds_a_direct_console(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from rich.console import Console\nc = Console()\nimport rich.console\nd = rich.console.Console(width=80)\n")
    assert _console_calls(module) == [2, 4]


def test_eval_router_piped_keeps_its_lines_whole():
    proc = subprocess.run(
        [sys.executable, "-m", "medmoe_lm_eval", "eval-router", "--router", str(REPO / "model_adapters" / "routers" / "default_router.json"), "--data", "bundled"],
        capture_output=True, text=True, env=_env(), timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("router: accuracy ") and lines[0].endswith(" rows")
    assert any(line.startswith("median routing time ") and line.endswith("ms one query at a time") for line in lines)

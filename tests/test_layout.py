"""The package's shape is part of its contract: one-way layers, small modules, lint and types.

These run the project's own tools (``lint-imports``, ``ruff``, ``mypy``) the way a contributor
would, so a backwards import, an oversized module or a type error fails the suite, not a review.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "medmoe_lm_eval"
SOURCE_DIRS = (PACKAGE, REPO / "leaderboard")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (pip install -e '.[test]')")
    return str(path)


def _sources() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in d.rglob("*.py") if "bundled" not in p.parts)


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_import_contract_is_kept():
    out = _run([_tool("lint-imports")], REPO, PYTHONPATH=str(REPO))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_a_backwards_import_breaks_the_contract(tmp_path):
    """A copy of the tree where the harness imports the CLI: ``lint-imports`` must refuse it."""
    for name in ("medmoe_lm_eval", "leaderboard"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("bundled", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    fusion = tmp_path / "medmoe_lm_eval" / "harness" / "fusion.py"
    fusion.write_text(fusion.read_text() + "\nfrom medmoe_lm_eval.cli import main  # noqa: E402,F401\n")
    out = _run([_tool("lint-imports")], tmp_path, PYTHONPATH=str(tmp_path))
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and "medmoe_lm_eval.harness.fusion -> medmoe_lm_eval.cli" in out.stdout


def test_ruff_lint_and_format_are_clean():
    ruff = _tool("ruff")
    lint = _run([ruff, "check", "."], REPO)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = _run([ruff, "format", "--check", "."], REPO)
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_mypy_passes_on_the_package():
    out = _run([_tool("mypy")], REPO)
    assert out.returncode == 0, out.stdout[-4000:]


def test_no_module_over_the_size_limit():
    too_long = {str(p.relative_to(REPO)): n for p in _sources() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not too_long, f"split these by concept (limit {MAX_MODULE_LINES} lines): {too_long}"


def test_no_function_over_the_size_limit():
    too_long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(REPO)}:{node.name}"] = lines
    assert not too_long, f"shorten these (limit {MAX_FUNCTION_LINES} lines): {too_long}"


def test_every_package_says_what_it_owns():
    missing = [
        str(p.relative_to(REPO))
        for p in PACKAGE.rglob("__init__.py")
        if "bundled" not in p.parts and not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert not missing, f"add a docstring saying what the package owns and may use: {missing}"

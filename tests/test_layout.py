"""The package's shape is part of its contract: one-way layers, private names kept private,
short functions, lint and types.

These run the project's own tools (``lint-imports``, ``ruff``, ``mypy``) the way a contributor
would, so a backwards import, a reach into another module's private names or a type error fails
the suite, not a review.
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
OUR_ROOTS = ("medmoe_lm_eval", "leaderboard")
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


def _is_module(dotted: str) -> bool:
    """``dotted`` names one of our modules or packages (a file or a folder with ``__init__.py``)."""
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _reach(importer: str, dotted: str) -> str | None:
    """The first private part of ``dotted`` that ``importer`` may not use, or ``None``.

    A private submodule is open to every module inside the package that holds it (the backends
    share ``harness/backends/_requests.py``; ``cli`` and ``demo`` install ``_lmeval_hook``); a
    private name defined in a module is that module's own.
    """
    parts = dotted.split(".")
    if parts[0] not in OUR_ROOTS:
        return None
    for i, part in enumerate(parts[1:], start=1):
        if not _is_private(part):
            continue
        owner = ".".join(parts[:i])
        if not (_is_module(".".join(parts[: i + 1])) and importer.startswith(owner + ".")):
            return f"{part} (private to {owner})"
    return None


def _imported_from(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads, relative imports resolved against ``importer``."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _attribute_path(node: ast.expr, bound: dict[str, str]) -> str | None:
    """``a.b.c`` as the dotted path of our module it starts from, when ``a`` is bound to one."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _attribute_path(node.value, bound)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def private_name_violations(path: Path, importer: str) -> list[str]:
    """``file:line: name`` for each private name of another of our modules that ``path`` (the
    module ``importer``) imports with ``from X import _name`` or reads as ``module._name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, str] = {}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
                found += [(node.lineno, why)] if (why := _reach(importer, alias.name)) else []
        elif isinstance(node, ast.ImportFrom):
            source = _imported_from(node, importer, path.name == "__init__.py")
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if _is_module(target):
                    bound[alias.asname or alias.name] = target
                found += [(node.lineno, why)] if (why := _reach(importer, target)) else []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            base = _attribute_path(node.value, bound)
            if base is not None and _is_module(base) and (why := _reach(importer, f"{base}.{node.attr}")):
                found.append((node.lineno, why))
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return [f"{shown}:{line}: {why}" for line, why in sorted(set(found))]


def test_no_module_imports_another_modules_private_names():
    found = [v for p in _sources() for v in private_name_violations(p, _module_of(p))]
    assert not found, "make these public (drop the underscore) or keep them in their module:\n" + "\n".join(found)


def test_the_private_name_check_finds_a_reach(tmp_path):
    """The check above can fail: each kind of reach is caught, and the allowed kinds are not."""
    probe = tmp_path / "probe.py"
    cases = {
        "from medmoe_lm_eval.store.files import _x": ("medmoe_lm_eval.analysis.probe", ["_x (private to medmoe_lm_eval.store.files)"]),
        "from ..store.files import _x": ("medmoe_lm_eval.analysis.probe", ["_x (private to medmoe_lm_eval.store.files)"]),
        "from medmoe_lm_eval.store import files\nfiles._x()": ("medmoe_lm_eval.analysis.probe", ["_x (private to medmoe_lm_eval.store.files)"]),
        "import medmoe_lm_eval.store.files\nmedmoe_lm_eval.store.files._x": ("medmoe_lm_eval.analysis.probe", ["_x (private to medmoe_lm_eval.store.files)"]),
        "from medmoe_lm_eval.harness.backends import _requests": ("medmoe_lm_eval.store.probe", ["_requests (private to medmoe_lm_eval.harness.backends)"]),
        "from medmoe_lm_eval.harness.backends import _requests as rq\nrq.LoglikelihoodRequest": ("medmoe_lm_eval.harness.backends.probe", []),
        "from medmoe_lm_eval.harness.backends import _requests as rq\nrq._hidden": (
            "medmoe_lm_eval.harness.backends.probe",
            ["_hidden (private to medmoe_lm_eval.harness.backends._requests)"],
        ),
        "from medmoe_lm_eval import __version__\nfrom lm_eval.api import _anything": ("medmoe_lm_eval.analysis.probe", []),
    }
    for source, (importer, expected) in cases.items():
        probe.write_text(source + "\n", encoding="utf-8")
        assert [v.split(": ", 1)[1] for v in private_name_violations(probe, importer)] == expected, source
    probe.write_text("from medmoe_lm_eval.store.files import _x\n", encoding="utf-8")
    assert private_name_violations(probe, "medmoe_lm_eval.analysis.probe") == [f"{probe}:1: _x (private to medmoe_lm_eval.store.files)"]


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

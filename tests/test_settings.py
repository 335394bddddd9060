"""Every ``MEDMOE_*`` variable is named in ``medmoe_lm_eval.settings`` and nowhere else in code.

Docstrings and comments may mention a variable; code (a string a module compares, reads or
prints) goes through ``settings``, so renaming one is one edit and ``settings.ALL`` is the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from medmoe_lm_eval import settings

ROOT = Path(__file__).resolve().parents[1]


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants in ``path`` that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_module_spells_a_medmoe_variable_but_settings():
    files = [p for d in ("medmoe_lm_eval", "leaderboard") for p in sorted((ROOT / d).rglob("*.py")) if p.name != "settings.py"]
    spelled = [f"{p.relative_to(ROOT)}:{line}" for p in files for line, text in _code_strings(p) if "MEDMOE_" in text]
    assert spelled == [], f"read these through medmoe_lm_eval.settings: {spelled}"


def test_each_variable_is_defined_once_with_its_meaning():
    names = [s.name for s in settings.ALL]
    assert len(names) == len(set(names)) == 9 and all(n.startswith("MEDMOE_") for n in names)
    assert all(len(s.meaning) > 20 for s in settings.ALL)


@pytest.mark.parametrize(("raw", "value", "text"), [(None, None, ""), ("", None, ""), ("  bundled ", "  bundled ", "bundled")])
def test_unset_and_empty_read_alike(monkeypatch, raw, value, text):
    if raw is None:
        monkeypatch.delenv(settings.DATA.name, raising=False)
    else:
        monkeypatch.setenv(settings.DATA.name, raw)
    assert settings.DATA.value() == value and settings.DATA.text() == text

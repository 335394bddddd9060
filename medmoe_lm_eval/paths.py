"""Where the project's data folders live, in a wheel and in a source checkout.

The wheel ships ``tasks/``, ``model_adapters/`` and ``leaderboard/`` inside the package
(hatch ``force-include``); an editable install or a source checkout has them at the repository
root. Every lookup goes through here so both layouts work.
"""

from __future__ import annotations

import os
from pathlib import Path

from medmoe_lm_eval import settings

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _shipped(name: str) -> Path:
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else REPO_DIR / name


def tasks_dir() -> Path:
    """The folder passed to lm-eval as ``--include_path``."""
    return _shipped("tasks")


def bundled_adapters_dir() -> Path:
    return _shipped("model_adapters")


def leaderboard_dir() -> Path:
    return _shipped("leaderboard")


def bundled_data_dir() -> Path:
    """Small real samples of each benchmark, in the hub datasets' column schemas."""
    return PACKAGE_DIR / "benchmarks" / "bundled"


def cache_dir() -> Path:
    """Built demo models, routers and quantized copies (``settings.CACHE`` overrides)."""
    root = settings.CACHE.value() or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "medmoe")
    return Path(root)

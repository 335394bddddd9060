"""Profiles read from a file or a results dict, through the schema: what ``medmoe profile show``
and the demo's progress line read, so neither needs to know where a run keeps its profile."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medmoe_lm_eval.jsonio import loads_data, read_bounded
from medmoe_lm_eval.profiling import ProfileError
from medmoe_lm_eval.schema.profile import is_profile, profile_problem
from medmoe_lm_eval.schema.run_record import PROFILE_SECTION


def profile_of(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The profile in an lm-eval results dict (``config.medmoe_profile``), ``None`` when it has none."""
    config = results.get("config")
    profile = config.get(PROFILE_SECTION) if isinstance(config, Mapping) else None
    return profile if isinstance(profile, dict) else None


def load_profile(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The profile in a ``results_*.json`` or ``profile_*.json`` (raises :class:`ProfileError`
    with one line naming the file when it has none, or one of a version this code does not read)."""
    file = Path(path)
    try:
        data = loads_data(read_bounded(file).decode("utf-8"))  # a device or a pipe is refused, never read
    except FileNotFoundError:
        raise ProfileError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{file}: not a readable JSON file ({exc.__class__.__name__}: {exc})") from None
    profile = profile_of(data) if isinstance(data, dict) else None
    if profile is None and is_profile(data):
        profile = data
    if profile is None:
        raise ProfileError(f"{file}: no medmoe profile in this file (expected config.{PROFILE_SECTION} in a results_*.json, or a profile_*.json)")
    problem = profile_problem(profile)
    if problem is not None:
        raise ProfileError(f"{file}: {problem}")
    return profile

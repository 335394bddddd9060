"""Use cases as data: the figures a ranking may weigh, their limits, and the YAML that defines them.

A use case (low-latency chatbot, edge deployment, ...) is a declarative profile that users add to
in ``use_cases.yaml``; nothing about a particular use case is a constant in code. The bundled
YAML lives beside this module (package data), since analysis is what reads it; the board only
shows what analysis ranks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medmoe_lm_eval import settings
from medmoe_lm_eval.benchmarks.metric_directions import METRIC_DIRECTIONS

#: the use cases shipped with the package (``medmoe rank`` and the board read them by default)
BUNDLED_USE_CASES = Path(__file__).with_name("use_cases.yaml")


@dataclass(frozen=True)
class Figure:
    """A per-candidate number a use case can weigh or limit."""

    key: str
    label: str
    column: str  #: column of :func:`candidate_figures`
    units: Mapping[str, float]  #: unit -> factor to the base unit ('' = bare number)
    base_unit: str

    @property
    def higher_is_better(self) -> bool:
        """The column's direction in ``metric_directions``, the one table of directions."""
        return METRIC_DIRECTIONS[self.column]


FIGURES: dict[str, Figure] = {
    "accuracy": Figure("accuracy", "accuracy", "accuracy", {"": 1.0, "%": 0.01}, ""),
    # latency figures (profiling.task_efficiency): "latency" is single-stream end-to-end (one request at a time,
    # router included, MLPerf single-stream); "batch_latency" is per backend call on a batch and is
    # never what a chatbot user waits for
    "latency": Figure("latency", "single-stream latency p50", "latency_ms", {"ms": 1.0, "s": 1000.0}, "ms"),
    "ttft": Figure("ttft", "time to first token p50", "ttft_ms", {"ms": 1.0, "s": 1000.0}, "ms"),
    "batch_latency": Figure("batch_latency", "batch latency p50", "batch_latency_ms", {"ms": 1.0, "s": 1000.0}, "ms"),
    "memory": Figure(
        "memory",
        "peak memory",
        "peak_memory_bytes",
        {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30},
        "B",
    ),
    # energy per request (per document answered): weighed beside accuracy without counting accuracy
    # twice; J per correct answer mixes the two and is shown as a figure, weighed only on purpose
    "energy": Figure("energy", "energy per request", "energy_per_request_j", {"J": 1.0, "mJ": 1e-3, "kJ": 1e3, "Wh": 3600.0}, "J"),
    "energy_per_correct": Figure(
        "energy_per_correct", "energy per correct answer", "energy_per_correct_j", {"J": 1.0, "mJ": 1e-3, "kJ": 1e3, "Wh": 3600.0}, "J"
    ),
    "throughput": Figure("throughput", "generated tokens/s", "generated_tokens_per_s", {"": 1.0, "tok/s": 1.0}, "tok/s"),
    "requests_per_s": Figure("requests_per_s", "requests/s", "requests_per_s", {"": 1.0, "req/s": 1.0}, "req/s"),
    "parameters": Figure("parameters", "parameters", "num_parameters", {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9}, ""),
    "calibration": Figure("calibration", "expected calibration error", "ece", {"": 1.0}, ""),
}


_ALIASES = {
    "acc": "accuracy",
    "latency_p50": "latency",
    "latency_ms": "latency",
    "e2e": "latency",
    "time_to_first_token": "ttft",
    "batch_latency_p50": "batch_latency",
    "peak_memory": "memory",
    "energy_per_request": "energy",
    "tokens_per_s": "throughput",
    "params": "parameters",
    "ece": "calibration",
}


_LIMIT_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>|≤|≥)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*([A-Za-z%/]*)\s*$")


def figure_for(name: str) -> Figure:
    key = _ALIASES.get(name, name)
    if key not in FIGURES:
        raise ValueError(f"unknown figure '{name}'; use one of {', '.join(FIGURES)}")
    return FIGURES[key]


def format_value(figure: Figure, value: float | None) -> str:
    """A figure in readable units (memory in GB, energy in J, accuracy as a fraction)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if figure.key == "memory":
        return f"{value / 1e9:.2f} GB"
    if figure.key in ("latency", "ttft", "batch_latency"):
        return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"
    if figure.key in ("energy", "energy_per_correct"):
        return f"{value:.3g} J"
    if figure.key == "parameters":
        return f"{value / 1e6:.1f} M"
    if figure.key == "accuracy":
        return f"{value:.3f}"
    return f"{value:.3g} {figure.base_unit}".strip()


class Limit(BaseModel):
    """A hard limit, written in the YAML as ``"<figure> <= <value> [unit]"``."""

    model_config = ConfigDict(frozen=True)

    figure: str
    op: str
    value: float  #: in the figure's base unit
    text: str

    @classmethod
    def parse(cls, text: str) -> Limit:
        match = _LIMIT_RE.match(str(text))
        if not match:
            raise ValueError(f"limit '{text}' is not '<figure> <= <number> [unit]' (e.g. 'memory <= 8 GB')")
        name, op, number, unit = match.groups()
        figure = figure_for(name)
        op = {"≤": "<=", "≥": ">=", "<": "<=", ">": ">="}.get(op, op)
        units = {u.lower(): f for u, f in figure.units.items()}
        if unit.lower() not in units:
            allowed = ", ".join(repr(u) if u else "no unit" for u in figure.units)
            raise ValueError(f"limit '{text}': unit '{unit}' does not fit {figure.key}; use {allowed}")
        return cls(figure=figure.key, op=op, value=float(number) * units[unit.lower()], text=str(text).strip())

    def holds(self, value: float | None) -> bool:
        if value is None or pd.isna(value):
            return False
        return value <= self.value if self.op == "<=" else value >= self.value

    def describe(self) -> str:
        """``"peak memory ≤ 8.00 GB"``; accuracy limits say they hold per task (the lowest task counts)."""
        fig = FIGURES[self.figure]
        tail = " on every task" if self.figure == "accuracy" else ""
        return f"{fig.label} {'≤' if self.op == '<=' else '≥'} {format_value(fig, self.value)}{tail}"


class UseCase(BaseModel):
    """One declarative use case: which tasks count, figure weights and hard limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    description: str = ""
    domains: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    weights: dict[str, float]
    limits: tuple[Limit, ...] = ()

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        out = {figure_for(k).key: float(v) for k, v in weights.items()}
        if any(v < 0 for v in out.values()) or sum(out.values()) <= 0:
            raise ValueError("weights must be >= 0 and not all 0")
        return out

    @field_validator("limits", mode="before")
    @classmethod
    def _parse_limits(cls, limits: Any) -> Any:
        if limits is None:
            return ()
        if isinstance(limits, str):
            limits = [limits]
        return tuple(item if isinstance(item, Limit) else Limit.parse(item) for item in limits)


def default_use_cases_path() -> Path:
    """``MEDMOE_USE_CASES`` if set, else the bundled :data:`BUNDLED_USE_CASES`."""
    env = settings.USE_CASES.value()
    if env:
        return Path(env)
    return BUNDLED_USE_CASES


def load_use_cases(path: str | Path | None = None) -> tuple[dict[str, UseCase], list[str]]:
    """Read the use-case YAML. A bad entry is skipped with a one-line message, never raised."""
    path = Path(path) if path is not None else default_use_cases_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, [f"{path}: cannot read use cases ({type(exc).__name__}: {str(exc).splitlines()[0]})"]
    entries = data.get("use_cases") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}, [f"{path}: expected a top-level 'use_cases:' mapping of slug -> use case"]
    cases: dict[str, UseCase] = {}
    problems: list[str] = []
    for slug, body in entries.items():
        try:
            if not isinstance(body, dict):
                raise ValueError("expected a mapping with 'name', 'weights' and optional 'limits'")
            cases[str(slug)] = UseCase(slug=str(slug), **body)
        except (ValidationError, ValueError, TypeError) as exc:
            problems.append(f"{path}: use case '{slug}' skipped: {_one_line(exc)}")
    return cases, problems


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err['msg'].removeprefix('Value error, ')}" if where else err["msg"]
    return str(exc)

"""The profile: what one run measured (latency, throughput, memory, energy), per task and expert.

Written under ``results["config"]["medmoe_profile"]`` and as ``profile_*.json`` beside the results
(the run record names it in ``profile_file``). :class:`Profile` fixes the top level; each section
is the JSON-ready dict the profiler's own classes build (``profiling.stats.Throughput.to_dict``
and friends), documented in ``profiling.report``. A run with profiling switched off writes
:func:`disabled` instead. The store checks a profile with :func:`profile_problem` before reading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from medmoe_lm_eval.schema.versions import VERSION_KEY, version_problem

#: 3: the version moved from ``schema`` to ``schema_version`` (as in every medmoe record);
#: 2 (under ``schema``): unique requests vs expert calls, per-device energy, idle power, single-stream latency
VERSION = 3
#: where profiles before version 3 kept their version
LEGACY_VERSION_KEY = "schema"
KIND = "profile"


@dataclass(frozen=True)
class Profile:
    """The top level of an enabled profile (section contents: ``profiling.report``)."""

    device: str  #: the run's device (``cpu``, ``cuda:0``, ...)
    started_at: str | None  #: ISO time the profiler started
    wall_s: float  #: the run's measured wall time
    hardware: dict[str, Any]
    software: dict[str, Any]
    total: dict[str, Any]  #: throughput over every batch
    failed_batches: int
    request_types: dict[str, Any]
    tasks: dict[str, Any]
    experts: dict[str, Any]
    served: dict[str, Any] | None  #: what reached the model; ``None`` when lm-eval did not say
    single_stream: dict[str, Any] | None  #: the serving probe, per task
    router: dict[str, Any]
    memory: dict[str, Any]
    energy: dict[str, Any]
    sampler: dict[str, Any]
    enabled: bool = True
    schema_version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready profile; ``serving`` (overlap of experts) and ``data_parallel`` (ranks)
        are added later by the harness when they apply."""
        data = asdict(self)
        return {VERSION_KEY: data.pop(VERSION_KEY), "enabled": data.pop("enabled"), **data}


def disabled() -> dict[str, Any]:
    """The profile of a run with profiling switched off (``profile=false``)."""
    return {VERSION_KEY: VERSION, "enabled": False}


def is_profile(data: Any) -> bool:
    """Whether ``data`` (a ``profile_*.json``'s content) is a medmoe profile of any version."""
    if not isinstance(data, Mapping) or "enabled" not in data:
        return False
    return VERSION_KEY in data or LEGACY_VERSION_KEY in data or data.get("enabled") is False


def profile_problem(profile: Mapping[str, Any]) -> str | None:
    """``None`` when this code reads ``profile``, else one line saying why it is skipped."""
    return version_problem(profile, KIND, VERSION, LEGACY_VERSION_KEY)


def is_enabled(profile: Mapping[str, Any]) -> bool:
    """A profile says ``enabled: false`` when nothing was measured."""
    return profile.get("enabled", True) is not False

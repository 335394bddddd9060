"""The run record: what a ``medmoe`` run adds to lm-eval's results under ``config.medmoe``.

lm-eval merges the model's ``get_model_info()`` into ``results["config"]``; the ``medmoe`` model
returns ``{"medmoe": RunRecord.to_dict(), "medmoe_profile": <profile>}`` (:data:`RUN_SECTION`,
:data:`PROFILE_SECTION`). Plain runs of other model types have neither. The store reads the record
back with :meth:`RunRecord.read`, which keeps each field only when it has the type medmoe writes: a
results folder may come from anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from medmoe_lm_eval.schema.versions import version_problem

#: 1: the first versioned record (records before it hold the same fields without ``schema_version``)
VERSION = 1
KIND = "run record (config.medmoe)"
#: the keys of ``results["config"]`` the medmoe model adds
RUN_SECTION = "medmoe"
PROFILE_SECTION = "medmoe_profile"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TaskRouting:
    """One task's routing in a run: how many requests, which top expert how often, agreement."""

    requests: int
    domain: str | None  #: the task's domain
    share: dict[str, float]  #: top expert -> share of the task's requests
    agreement: float | None  #: share of judged requests routed to the task's domain
    fallbacks: int = 0  #: requests the fallback expert answered because the router was unsure

    @classmethod
    def read(cls, entry: Any) -> TaskRouting:
        data = _mapping(entry)
        share = {str(k): float(v) for k, v in _mapping(data.get("share")).items() if _number(v) is not None}
        requests, fallbacks = _number(data.get("requests")), _number(data.get("fallbacks"))
        return cls(int(requests or 0), _text(data.get("domain")), share, _number(data.get("agreement")), int(fallbacks or 0))


@dataclass(frozen=True)
class RoutingSummary:
    """The run's routing: the router, its notes, the log file beside the results, per-task counts."""

    router: dict[str, Any] | None  #: ``{"type", "top_k"}``; ``None`` for a one-expert candidate
    notes: list[str] = field(default_factory=list)
    log_file: str | None = None  #: the routing log's name, in the results file's folder
    per_task: dict[str, TaskRouting] = field(default_factory=dict)

    @classmethod
    def read(cls, entry: Any) -> RoutingSummary:
        data = _mapping(entry)
        router = data.get("router")
        notes = data.get("notes")
        return cls(
            dict(router) if isinstance(router, Mapping) else None,
            [n for n in notes if isinstance(n, str)] if isinstance(notes, list) else [],
            _text(data.get("log_file")),
            {str(t): TaskRouting.read(v) for t, v in _mapping(data.get("per_task")).items()},
        )


@dataclass(frozen=True)
class RunRecord:
    """``config.medmoe``: which candidate ran, built how, routed how, and where its logs went."""

    candidate: str | None
    kind: str | None  #: the adapter's kind: ``single`` or ``moe``
    label: str | None  #: what the board colours by: full, awq, gptq, gguf-<type>, moe or ensemble
    adapter: dict[str, Any]  #: the adapter config as evaluated (``harness.config.dump_adapter``)
    experts: dict[str, dict[str, Any]]  #: expert name -> backend, model, quantization, batch, ...
    expert_loads: dict[str, int] = field(default_factory=dict)
    data_parallel: dict[str, Any] | None = None  #: ranks and what each loaded, when world_size > 1
    routing: RoutingSummary = field(default_factory=lambda: RoutingSummary(None))
    profile_file: str | None = None  #: the profile's name, in the results file's folder
    chat_template: Any = None  #: whose chat template rendered the prompts, if one did
    medmoe_data: str | None = None  #: ``MEDMOE_DATA`` as the run saw it (``hub`` when unset)
    version: str | None = None  #: medmoe-lm-eval's package version
    schema_version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready section (lm-eval serialises ``results["config"]`` as it is)."""
        return asdict(self)

    @classmethod
    def read(cls, section: Mapping[str, Any]) -> RunRecord:
        """The record in a file's ``config.medmoe`` (any version this code reads), field by field."""
        loads = {str(k): int(v) for k, v in _mapping(section.get("expert_loads")).items() if _number(v) is not None}
        dp = section.get("data_parallel")
        return cls(
            candidate=_text(section.get("candidate")),
            kind=_text(section.get("kind")),
            label=_text(section.get("label")),
            adapter=_mapping(section.get("adapter")),
            experts={str(k): _mapping(v) for k, v in _mapping(section.get("experts")).items()},
            expert_loads=loads,
            data_parallel=dict(dp) if isinstance(dp, Mapping) else None,
            routing=RoutingSummary.read(section.get("routing")),
            profile_file=_text(section.get("profile_file")),
            chat_template=section.get("chat_template"),
            medmoe_data=_text(section.get("medmoe_data")),
            version=_text(section.get("version")),
            schema_version=VERSION,
        )


def run_section(config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``config.medmoe`` of a results file when it holds one this code reads; else ``None`` and,
    for a version this code does not read, the one-line reason."""
    section = config.get(RUN_SECTION)
    if not isinstance(section, Mapping) or not section:
        return None, None
    problem = version_problem(section, KIND, VERSION)
    return (None, problem) if problem else (dict(section), None)

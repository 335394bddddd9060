"""One line of a routing log (``routing_*.jsonl``): which experts served one request, and why.

Users need to see which experts fired, where the router disagreed with the task's domain and what
that cost, so the harness appends one :class:`RoutingRow` per decision as it is made (an
interrupted run keeps the decisions it took) and the store reads them back with :func:`read_row`,
which trusts nothing: a log may come from elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from medmoe_lm_eval.schema.versions import VERSION_KEY, version_problem

#: 1: the first versioned row (the rows before it are the same fields without ``schema_version``)
VERSION = 1
KIND = "routing-log row"
#: the row's fields as the store's routing-log frame holds them, in display order
COLUMNS: tuple[str, ...] = ("task", "doc_id", "request_type", "experts", "weights", "domain", "routed_domain", "router_ms", "text", "fallback")
_TEXT_FIELDS = ("task", "request_type", "domain", "routed_domain", "text")


@dataclass(frozen=True)
class RoutingRow:
    """One routing decision."""

    task: str | None
    doc_id: int | None
    request_type: str  #: lm-eval's request type (loglikelihood, generate_until, ...)
    experts: list[str]  #: the experts that answered, first = top expert
    weights: list[float]  #: each expert's weight in the fused answer, in ``experts`` order
    domain: str | None  #: the task's domain
    routed_domain: str | None  #: the domain the router chose (``general`` when the fallback answered)
    router_ms: float  #: the router's time per request in this batch
    text: str  #: the start of what the router read
    #: the router was unsure and the fallback expert answered instead of a guess: such a row counts
    #: against routing accuracy (its routed domain is not the task's), so the scorecard counts them
    fallback: bool = False
    schema_version: int = VERSION

    def to_line(self) -> str:
        """The JSONL line the log holds (no newline)."""
        return json.dumps(asdict(self), ensure_ascii=False)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class UnknownRowVersion(ValueError):
    """A row written in a layout this code does not read (the message is one line)."""


def read_row(row: object) -> dict[str, Any] | None:
    """A log line's fields (:data:`COLUMNS`) with each of the type medmoe writes, or ``None`` when
    its experts are not a list of names; raises :class:`UnknownRowVersion` for a version this code
    does not read. A field of another type (a list where a domain goes) reads as missing, since
    the scorecard groups and pairs on these fields; ``fallback`` is ``None`` where the row does not
    say (a log from elsewhere)."""
    if not isinstance(row, dict):
        return None
    problem = version_problem(row, KIND, VERSION)
    if problem is not None:
        raise UnknownRowVersion(problem)
    experts = row.get("experts")
    if not isinstance(experts, list) or not all(isinstance(e, str) for e in experts):
        return None
    weights, doc_id, fallback = row.get("weights"), row.get("doc_id"), row.get("fallback")
    return {
        **{f: _text(row.get(f)) for f in _TEXT_FIELDS},
        "doc_id": doc_id if isinstance(doc_id, int) and not isinstance(doc_id, bool) else None,
        "experts": experts,
        "weights": weights if isinstance(weights, list) and all(_is_number(w) for w in weights) else None,
        "router_ms": row["router_ms"] if _is_number(row.get("router_ms")) else None,
        "fallback": fallback if isinstance(fallback, bool) else None,
    }


__all__ = ["COLUMNS", "KIND", "VERSION", "VERSION_KEY", "RoutingRow", "UnknownRowVersion", "read_row"]

"""What the routing logs and run summaries say about a router: expert shares, confusion, regret.

Regret pairs a routed mixture with the oracle mixture over the same experts, so a user sees what
the router's mistakes cost in accuracy, not only how often it disagrees with the task's domain.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from medmoe_lm_eval.analysis.quality import main_metric_rows
from medmoe_lm_eval.store.records import ResultsSet, RunInfo
from medmoe_lm_eval.store.values import as_dict


def routing_share(results: ResultsSet) -> pd.DataFrame:
    """Long table (candidate, task, domain, expert, share, requests, agreement) from run summaries."""
    out: list[dict[str, Any]] = []
    for info in results.runs.values():
        record = info.record
        if record is None or not info.latest or record.kind != "moe":
            continue
        for task, summary in record.routing.per_task.items():
            for expert in dict.fromkeys([*record.experts, *summary.share]):  # experts never chosen show as 0
                out.append(
                    {
                        "candidate": info.candidate,
                        "task": task,
                        "domain": summary.domain,
                        "expert": expert,
                        "share": summary.share.get(expert, 0.0),
                        "requests": float(summary.requests),
                        "agreement": math.nan if summary.agreement is None else summary.agreement,
                    }
                )
    return pd.DataFrame(out, columns=["candidate", "task", "domain", "expert", "share", "requests", "agreement"])


def mixture_candidates(results: ResultsSet) -> list[str]:
    return sorted({i.candidate for i in results.runs.values() if i.latest and i.record is not None and i.record.kind == "moe"})


def routing_confusion(log: pd.DataFrame) -> pd.DataFrame:
    """Counts of task domain (rows) x routed domain (columns); ``unknown`` where absent."""
    if log.empty:
        return pd.DataFrame()
    return pd.crosstab(log["domain"].fillna("unknown"), log["routed_domain"].fillna("unknown"), rownames=["task domain"], colnames=["routed domain"])


def misrouted(log: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """Decisions whose routed domain differs from the task's domain (both known)."""
    if log.empty:
        return log
    wrong = log[log["domain"].notna() & log["routed_domain"].notna() & (log["domain"] != log["routed_domain"])]
    return (
        wrong[["task", "doc_id", "request_type", "domain", "routed_domain", "top_expert", "text"]]
        .drop_duplicates(["task", "doc_id", "routed_domain"])
        .head(limit)
        .reset_index(drop=True)
    )


def _expert_signature(info: RunInfo) -> tuple[Any, ...]:
    adapter = info.record.adapter if info.record is not None else {}
    experts = adapter["experts"] if isinstance(adapter.get("experts"), list) else []
    names = tuple(sorted((str(as_dict(e).get("name")), str(as_dict(e).get("model"))) for e in experts))
    shared = as_dict(adapter.get("shared_expert")).get("name")
    return names or tuple(sorted(info.record.experts if info.record is not None else ())), shared


def routing_regret(results: ResultsSet) -> pd.DataFrame:
    """Accuracy lost by each routed mixture against the oracle mixture over the same experts.

    Pairs are latest ``moe`` runs with identical experts, one with router type ``oracle``;
    ``regret = oracle - router`` on each shared task's main metric (positive = the router cost
    accuracy).
    """
    cols = ["candidate", "router_type", "oracle", "task", "metric", "router_value", "oracle_value", "regret"]
    moe = _mixtures(results)
    signature = {i.run_id: _expert_signature(i) for i in moe}
    oracles = [i for i in moe if _router_type(i) == "oracle"]
    pairs = pd.DataFrame(
        [
            (o.candidate, _router_type(o), oracle.candidate)
            for oracle in oracles
            for o in moe
            if _router_type(o) != "oracle" and signature[o.run_id] == signature[oracle.run_id]
        ],
        columns=["candidate", "router_type", "oracle"],
    ).drop_duplicates()
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    best = main_metric_rows(results.frame)[["candidate", "task", "metric", "value"]]
    routed = pairs.merge(best.rename(columns={"value": "router_value"}), on="candidate")
    both = routed.merge(best.rename(columns={"candidate": "oracle", "value": "oracle_value"}), on=["oracle", "task", "metric"])
    both["regret"] = both["oracle_value"] - both["router_value"]
    return both[cols].sort_values(["candidate", "oracle", "task"]).reset_index(drop=True)


def _mixtures(results: ResultsSet) -> list[RunInfo]:
    """The latest runs of ``moe`` candidates."""
    return [i for i in results.runs.values() if i.latest and i.record is not None and i.record.kind == "moe"]


def _router_type(info: RunInfo) -> str | None:
    if info.record is None:
        return None
    router = as_dict(info.record.routing.router) or as_dict(info.record.adapter.get("router"))
    return router.get("type")


def is_oracle(results: ResultsSet, candidate: str) -> bool:
    """Whether ``candidate``'s latest run is a mixture with ``router: oracle`` (the reference routed
    mixtures are measured against, so it has no oracle of its own)."""
    return any(i.candidate == candidate and i.latest and _router_type(i) == "oracle" for i in results.runs.values())


def oracle_partner(results: ResultsSet, candidate: str) -> str | None:
    """The oracle mixture (``router: oracle``) over the same experts as ``candidate``, if one ran."""
    moe = _mixtures(results)
    mine = next((i for i in moe if i.candidate == candidate), None)
    if mine is None or _router_type(mine) == "oracle":
        return None
    same = sorted({o.candidate for o in moe if _router_type(o) == "oracle" and _expert_signature(o) == _expert_signature(mine)})
    return same[0] if same else None

"""A router scorecard for one mixture: how well it routes, what routing costs, how fast it decides.

Routers are judged as RouterBench and RouteLLM judge them, on the same documents:

* ``routing_accuracy``: share of the routing log's decisions whose routed domain is the task's
  domain; the confusion matrix of task domain x routed domain (:func:`.routing.routing_confusion`);
* per task, ``agreement``: share of requests where the router's top expert is the oracle's (the
  oracle mixture's own routing log, request by request, when it ran; otherwise the expert of the
  task's domain, which is what the oracle router picks);
* per task, ``regret = oracle - router`` on the task's main metric over the documents both
  answered, with its 95% paired bootstrap interval (positive: routing mistakes cost quality), the
  oracle being the mixture over the same experts with ``router: oracle``. One sign everywhere: the
  terminal, its ``--json``, the Routing page and :func:`.routing.routing_regret` all write
  :data:`REGRET_DEFINITION`;
* ``gap_recovered``: ``(mixture - best single expert) / (oracle - best single expert)`` on the mean
  chance-corrected quality over the tasks all of them ran (RouteLLM's "performance gap
  recovered"); the best single expert is the best one-expert candidate built on one of the
  mixture's experts. 1 = as good as the oracle, 0 = no better than the best expert alone;
* ``fallbacks``: decisions the router was unsure of, answered by the fallback expert (the routing
  log's ``fallback``); routing accuracy counts each as a misroute, this count says how many of
  those were the router declining to guess;
* ``router_ms_p50``/``router_ms_p99``: the router's time per decision as the routing log records it
  (each batch's routing time divided by its requests, so the requests of one batch share a value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.paired import PairedDifference, paired_difference
from medmoe_lm_eval.analysis.quality import main_metric_rows, task_matrices
from medmoe_lm_eval.analysis.routing import oracle_partner, routing_confusion
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.routing_logs import routing_logs
from medmoe_lm_eval.store.samples import load_items
from medmoe_lm_eval.store.values import as_dict

#: the one sign regret has wherever it is shown (positive: accuracy the router lost against the oracle)
REGRET_DEFINITION = "oracle - router"
JSON_KEYS = ("candidate", "routing_accuracy", "fallbacks", "oracle_candidate", "gap_recovered", "router_ms_p50", "router_ms_p99", "regret_definition", "tasks")
TASK_JSON_KEYS = ("task", "domain", "agreement", "regret", "regret_ci_low", "regret_ci_high")
_REQUEST = ["task", "doc_id", "request_type"]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class TaskScore:
    task: str
    domain: str | None
    agreement: float = math.nan
    regret: float = math.nan
    regret_ci_low: float = math.nan
    regret_ci_high: float = math.nan
    metric: str = ""
    n_paired: int = 0
    p_value: float = math.nan
    requests: int = 0


@dataclass(frozen=True)
class Scorecard:
    candidate: str
    routing_accuracy: float
    oracle_candidate: str | None
    gap_recovered: float
    router_ms_p50: float
    router_ms_p99: float
    tasks: tuple[TaskScore, ...]
    best_single: str | None = None
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)
    notes: tuple[str, ...] = ()
    #: decisions answered by the fallback expert because the router was unsure
    fallbacks: int = 0

    def to_json(self) -> dict[str, Any]:
        out = {k: _clean(getattr(self, k)) for k in JSON_KEYS if k not in ("regret_definition", "tasks")}
        out["regret_definition"] = f"{REGRET_DEFINITION} on the task's main metric; positive: routing lost accuracy"
        out["tasks"] = [{k: _clean(getattr(t, k)) for k in TASK_JSON_KEYS} for t in self.tasks]
        return out

    def task_table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(t) for t in self.tasks], columns=list(TaskScore.__dataclass_fields__))


def _numbered(log: pd.DataFrame) -> pd.DataFrame:
    """The log with each request's occurrence number within (task, doc_id, request_type)."""
    return log.assign(_n=log.groupby(_REQUEST, dropna=False).cumcount())


def oracle_agreement(log: pd.DataFrame, oracle_log: pd.DataFrame) -> pd.Series:
    """Per task: share of requests with the oracle's top expert (request by request, else by domain)."""
    if log.empty:
        return pd.Series(dtype=float)
    if not oracle_log.empty:
        both = _numbered(log).merge(_numbered(oracle_log), on=[*_REQUEST, "_n"], suffixes=("", "_oracle"))
        if not both.empty:
            return (both["top_expert"] == both["top_expert_oracle"]).groupby(both["task"]).mean()
    judged = log[log["domain"].notna() & log["routed_domain"].notna()]
    return (judged["domain"] == judged["routed_domain"]).groupby(judged["task"]).mean()


def _expert_models(results: ResultsSet, candidate: str) -> set[str]:
    models: set[str] = set()
    for info in results.latest_runs(candidate):
        experts = info.record.adapter.get("experts") if info.record is not None else None
        models |= {str(as_dict(e).get("model")) for e in (experts if isinstance(experts, list) else [])}
    return models


def single_experts(results: ResultsSet, candidate: str) -> list[str]:
    """One-expert candidates built on one of ``candidate``'s experts (same model path or id)."""
    mine = _expert_models(results, candidate)
    singles = {i.candidate for i in results.runs.values() if i.latest and i.record is not None and i.record.kind == "single"}
    return sorted(c for c in singles if c != candidate and _expert_models(results, c) & mine)


def gap_recovered(main: pd.DataFrame, candidate: str, oracle: str | None, singles: list[str]) -> tuple[float, str | None]:
    """RouteLLM's gap recovered over the tasks all of them ran, and the best single expert.

    NaN when the oracle is no better than the best single expert: there is no gap to recover, and the
    ratio of two negative differences would read as a high score.
    """
    names = [candidate, *([oracle] if oracle else []), *singles]
    if oracle is None or not singles:
        return math.nan, None
    wide = main[main["candidate"].isin(names)].pivot_table(index="task", columns="candidate", values="quality", aggfunc="first")
    wide = wide.reindex(columns=names).dropna()
    if wide.empty:
        return math.nan, None
    mean = wide.mean()
    best = str(mean[singles].idxmax())
    span = float(mean[oracle] - mean[best])
    return (float(mean[candidate] - mean[best]) / span if span > 1e-12 else math.nan), best  # no gap to recover


def task_regret(router: np.ndarray, oracle: np.ndarray) -> PairedDifference:
    """Regret on one task from paired per-document scores: ``oracle - router`` (positive: the
    router lost accuracy), with the paired bootstrap interval and test of :mod:`.paired`."""
    return paired_difference(np.asarray(router, dtype=float), np.asarray(oracle, dtype=float))  # b - a


def _regrets(results: ResultsSet, candidate: str, oracle: str | None) -> dict[str, TaskScore]:
    if oracle is None:
        return {}
    main = main_metric_rows(results.frame[results.frame["candidate"].isin([candidate, oracle])])
    items, _ = load_items(results, [candidate, oracle])
    out = {}
    for task, m in task_matrices(items, main).items():
        if candidate in m.raw and oracle in m.raw:
            d = task_regret(m.raw[candidate].to_numpy(), m.raw[oracle].to_numpy())
            out[task] = TaskScore(
                task, None, regret=d.delta, regret_ci_low=d.ci_low, regret_ci_high=d.ci_high, metric=m.metric, n_paired=d.n_paired, p_value=d.p_value
            )
    return out


def _percentile(values: pd.Series, q: float) -> float:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    return float(np.percentile(v, q)) if len(v) else math.nan


def _task_scores(results: ResultsSet, candidate: str, log: pd.DataFrame, agreement: pd.Series, regrets: dict[str, TaskScore]) -> tuple[TaskScore, ...]:
    frame = results.frame[results.frame["candidate"] == candidate]
    domains = dict(zip(frame["task"], frame["domain"], strict=True)) | dict(zip(log["task"], log["domain"], strict=True))
    tasks = sorted({*map(str, agreement.index), *regrets})
    requests = log.groupby("task").size()
    out = []
    for task in tasks:
        base = regrets.get(task, TaskScore(task, None))
        domain = domains.get(task)
        extra = {
            "domain": domain if isinstance(domain, str) else None,
            "agreement": float(agreement.get(task, math.nan)),
            "requests": int(requests.get(task, 0)),
        }
        out.append(TaskScore(**{**asdict(base), **extra}))
    return tuple(out)


def scorecard(results: ResultsSet, candidate: str) -> Scorecard:
    """The scorecard of mixture ``candidate`` from its runs, routing log and its oracle's."""
    log, issues = routing_logs(results, candidate)
    oracle = oracle_partner(results, candidate)
    oracle_log = routing_logs(results, oracle)[0] if oracle else pd.DataFrame(columns=log.columns)
    judged = log[log["domain"].notna() & log["routed_domain"].notna()]
    accuracy = float((judged["domain"] == judged["routed_domain"]).mean()) if len(judged) else math.nan
    gap, best = gap_recovered(main_metric_rows(results.frame), candidate, oracle, single_experts(results, candidate))
    notes = [str(i) for i in issues]
    if oracle is None:
        notes.append("no oracle mixture over the same experts on this board: regret and gap recovered need one (router: {type: oracle})")
    if best is not None and not math.isfinite(gap):
        notes.append(f"gap recovered undefined: the oracle mixture is no better than the best single expert ({best}) on these tasks")
    tasks = _task_scores(results, candidate, log, oracle_agreement(log, oracle_log), _regrets(results, candidate, oracle))
    return Scorecard(
        candidate,
        accuracy,
        oracle,
        gap,
        _percentile(log["router_ms"], 50),
        _percentile(log["router_ms"], 99),
        tasks,
        best,
        routing_confusion(log),
        tuple(notes),
        int(log["fallback"].map(lambda v: v is True).sum()) if "fallback" in log else 0,
    )

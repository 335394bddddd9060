"""Gates: ``p(domain | query)`` turned into expert weights, and how routers are trained and judged.

Router kinds:
- ``classifier``: a trained text classifier (TF-IDF + logistic regression stored as plain JSON,
  or a fine-tuned transformers sequence classifier in safetensors), fast and offline;
- ``keywords``: hand-written keyword rules;
- ``oracle``: the task's own domain, the upper bound that routing regret is measured against;
- ``fixed`` / ``uniform``: every expert always on with static weights (an ensemble).

Gate semantics (Mixtral-style): keep the ``top_k`` experts by gate probability, renormalise over
them, drop those under ``min_weight``; a shared expert (DeepSeekMoE) is then mixed in with its own
fixed weight and the routed weights scaled by ``1 - weight``. A request whose top domain
probability is under ``threshold`` is not guessed: the ``fallback`` expert (else the shared
expert) answers it alone, and its :class:`Route` says ``fallback``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medmoe_lm_eval.benchmarks.domains import task_domain
from medmoe_lm_eval.harness.config import AdapterConfig
from medmoe_lm_eval.harness.fusion import normalise
from medmoe_lm_eval.harness.routing.scorers import DomainScorer, KeywordScorer, RouterError, load_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """The experts that serve one request, heaviest first (the shared expert, if any, last)."""

    experts: tuple[str, ...]
    weights: tuple[float, ...]
    routed_domain: str | None = None
    probs: Mapping[str, float] = field(default_factory=dict)
    #: the router was unsure (top probability under ``router.threshold``): the fallback answered
    fallback: bool = False

    @property
    def top(self) -> str:
        return self.experts[0]


# ---------------------------------------------------------------------------------------------
# Domain scorers: texts -> probability per domain


# ---------------------------------------------------------------------------------------------
# The gate


def gate(probs: Mapping[str, float], top_k: int, min_weight: float = 0.0) -> list[tuple[str, float]]:
    """Top-k keys of ``probs`` renormalised, minus those under ``min_weight`` (the top one stays)."""
    ranked = sorted(probs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    if sum(p for _, p in ranked) > 0:
        ranked = [(k, p) for k, p in ranked if p > 0]
        weights = normalise([p for _, p in ranked])
    else:  # no evidence at all: the k candidates share the weight
        weights = [1.0 / len(ranked)] * len(ranked)
    kept = [(k, w) for (k, _), w in zip(ranked, weights) if w >= min_weight] or [(ranked[0][0], 1.0)]
    return list(zip([k for k, _ in kept], normalise([w for _, w in kept])))


class Router:
    """Routes requests of one adapter. ``route`` is vectorised over a whole request list."""

    def __init__(self, cfg: AdapterConfig) -> None:
        self.cfg = cfg
        self.rcfg = cfg.router
        self.routed = cfg.routed_experts
        self.by_domain = {e.domain: e.name for e in self.routed}
        self.domain_of = {e.name: e.domain for e in cfg.experts}
        self.notes: list[str] = []
        self.scorer: DomainScorer | None = None
        if self.rcfg is None:
            return
        if self.rcfg.type == "classifier":
            assert self.rcfg.path is not None, "the adapter schema requires router.path for a classifier"
            self.scorer = load_scorer(self.rcfg.path)
            # a fallback expert (a generalist) need not be a domain the router knows
            fallback_domain = {self.domain_of[self.rcfg.fallback]} if self.rcfg.fallback else set()
            missing = sorted(set(self.by_domain) - set(self.scorer.domains) - fallback_domain)
            if missing:
                raise RouterError(
                    f"{self.rcfg.path}: router.path: router knows domains {self.scorer.domains}, not {missing}; fix: retrain it with rows of those domains or change the experts' domains"
                )
        elif self.rcfg.type == "keywords":
            self.scorer = KeywordScorer(self.rcfg.keywords or {})
        self.static = self._static_weights()

    def _static_weights(self) -> list[tuple[str, float]] | None:
        if self.rcfg is None or self.rcfg.type not in ("fixed", "uniform"):
            return None
        names = [e.name for e in self.routed]
        raw = [1.0] * len(names) if self.rcfg.type == "uniform" else [float((self.rcfg.weights or {}).get(n, 0.0)) for n in names]
        if self.rcfg.type == "fixed" and abs(sum(raw) - 1.0) > 1e-9:
            self.notes.append(f"router.weights summed to {sum(raw):g}; normalised to 1")
            log.warning("%s: router.weights sum to %g; normalising them to 1", self.cfg.source, sum(raw))
        pairs = sorted(zip(names, normalise(raw)), key=lambda kv: -kv[1])
        return [(n, w) for n, w in pairs if w > 0]

    # -- per-request decision ---------------------------------------------------------------
    def domain_probs(self, texts: Sequence[str], tasks: Sequence[str | None]) -> list[dict[str, float]]:
        """``p(domain | request)`` for each request (empty dicts for static routers)."""
        rtype = self.rcfg.type if self.rcfg else None
        if rtype == "oracle":
            return [self._oracle(t) for t in tasks]
        if self.scorer is not None:
            matrix = self.scorer.predict_proba(texts)
            return [{d: float(p) for d, p in zip(self.scorer.domains, row) if d in self.by_domain} for row in matrix]
        return [{} for _ in texts]

    def _oracle(self, task: str | None) -> dict[str, float]:
        domain = task_domain(task, self.rcfg.task_domains if self.rcfg else None)
        if domain is None or domain not in self.by_domain:
            raise RouterError(
                f"{self.cfg.source}: router.task_domains: task '{task}' has domain {domain!r}, which no expert serves; "
                f"fix: add `task_domains: {{{task}: <one of {sorted(self.by_domain)}>}}` to the router"
            )
        return {domain: 1.0}

    def route(self, texts: Sequence[str], tasks: Sequence[str | None], groups: Sequence[Any] | None = None) -> list[Route]:
        """One :class:`Route` per request.

        ``groups`` (e.g. ``(task, doc_id)``) makes requests of one document share one decision,
        with their domain probabilities averaged: the answer options of a multiple-choice
        question must be scored by the same experts, or their log-likelihoods are not comparable.
        """
        if self.rcfg is None:
            only = self.cfg.experts[0].name
            return [Route((only,), (1.0,), self.domain_of[only]) for _ in texts]
        probs = self.domain_probs(texts, tasks)
        if groups is not None:
            probs = _pool_by_group(probs, groups)
        return [self._finish(p) for p in probs]

    def _finish(self, probs: Mapping[str, float]) -> Route:
        if self.static is None and self._unsure(probs):
            return self._fallback(probs)
        if self.static is not None:
            chosen = list(self.static)
        else:
            assert self.rcfg is not None, "a router without static weights has a router config"
            by_expert = {self.by_domain[d]: p for d, p in probs.items()}
            chosen = gate(by_expert, self.rcfg.top_k, self.rcfg.min_weight)
        shared = self.cfg.shared_expert
        if shared is not None:
            chosen = [(n, w * (1.0 - shared.weight)) for n, w in chosen] + [(shared.name, shared.weight)]
        names, weights = zip(*chosen)
        return Route(tuple(names), tuple(weights), self.domain_of[names[0]], dict(probs))

    def _unsure(self, probs: Mapping[str, float]) -> bool:
        threshold = self.rcfg.threshold if self.rcfg else 0.0
        return threshold > 0 and max(probs.values(), default=0.0) < threshold

    def _fallback(self, probs: Mapping[str, float]) -> Route:
        """An unsure decision is not a guess: the configured fallback (else the shared expert) answers alone."""
        assert self.rcfg is not None
        name = self.rcfg.fallback or (self.cfg.shared_expert.name if self.cfg.shared_expert else None)
        assert name is not None, "config validation requires a fallback or a shared expert with a threshold"
        return Route((name,), (1.0,), self.domain_of[name], dict(probs), fallback=True)


def _pool_by_group(probs: list[dict[str, float]], groups: Sequence[Any]) -> list[dict[str, float]]:
    sums: dict[Any, dict[str, float]] = {}
    counts: dict[Any, int] = {}
    for p, g in zip(probs, groups):
        acc = sums.setdefault(g, {})
        for d, v in p.items():
            acc[d] = acc.get(d, 0.0) + v
        counts[g] = counts.get(g, 0) + 1
    return [{d: v / counts[g] for d, v in sums[g].items()} for g in groups]


# ---------------------------------------------------------------------------------------------
# Training and evaluation

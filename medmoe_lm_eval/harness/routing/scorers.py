"""Domain scorers: what turns a query into ``p(domain | query)`` for the gate, and loading them from files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class RouterError(ValueError):
    """A router file or routing decision that cannot be trusted; one line naming file and fix."""


ROUTER_FORMAT = 1


TRANSFORMERS_MARKER = "medmoe_router.json"


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
        raise RouterError(
            f"{path}: router.path: not a readable router file ({type(exc).__name__}); fix: retrain with `medmoe train-router --out {path}`"
        ) from None
    if not isinstance(payload, dict) or payload.get("kind") != "medmoe-router":
        raise RouterError(f"{path}: router.path: not a medmoe router (wrong kind of file); fix: train one with `medmoe train-router --out {path}`")
    trained_with = payload.get("sklearn_version")
    if trained_with != sklearn.__version__:
        raise RouterError(
            f"{path}: router.path: trained with scikit-learn {trained_with}, this is {sklearn.__version__}; "
            f"fix: retrain with `medmoe train-router --data <train.jsonl> --out {path}`"
        )
    return payload

"""Domain scorers: what turns a query into ``p(domain | query)`` for the gate, and loading them from files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medmoe_lm_eval.harness.routing.router_file import FORMAT, LinearScorer, RouterError, read_router_json

__all__ = ["DomainScorer", "KeywordScorer", "LinearScorer", "RouterError", "TransformersScorer", "load_scorer"]


ROUTER_FORMAT = FORMAT


TRANSFORMERS_MARKER = "medmoe_router.json"


class DomainScorer(Protocol):
    domains: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class TransformersScorer:
    """A fine-tuned transformers sequence classifier saved by :func:`train_transformers`."""

    def __init__(self, path: Path, meta: dict[str, Any], trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = path
        self.domains = list(meta["domains"])
        self.max_length = int(meta.get("max_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        # safetensors only: a pytorch_model.bin is a pickle and would run code when loaded
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=trust_remote_code, use_safetensors=True).eval()

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
    """Load a trained router: a JSON router file, or a folder (a transformers classifier in safetensors).

    Neither path unpickles anything, so a router named by a results file from elsewhere runs no code.
    """
    path = Path(path)
    if path.is_dir():
        marker = path / TRANSFORMERS_MARKER
        if not marker.is_file():
            raise RouterError(f"{path}: router.path: folder has no {TRANSFORMERS_MARKER}; fix: point at a router trained by `medmoe train-router --model ...`")
        if not any((path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
            raise RouterError(
                f"{path}: router.path: folder has no model.safetensors (pickled weights such as pytorch_model.bin are never loaded); "
                "fix: save the classifier with save_pretrained(safe_serialization=True) or retrain it with `medmoe train-router --model ...`"
            )
        return TransformersScorer(path, json.loads(marker.read_text()))
    return LinearScorer(path, read_router_json(path))

"""The router file: plain JSON of a TF-IDF vocabulary, its idf weights and a linear model's weights.

Why JSON and not a pickle: a router path can come from a results folder someone else wrote (the
Consult page rebuilds candidates from them), and unpickling runs whatever code the file names;
reading JSON runs none. JSON also frees users from the scikit-learn release that trained the
router: scoring needs only the documented tokenisation (``CountVectorizer`` with a fixed
vocabulary), numpy and scipy. The library versions that trained it are recorded in the file.

A scored query: counts of the vocabulary's word n-grams (stop words dropped before n-grams are
formed, as scikit-learn does) -> ``1 + log(count)`` (sublinear tf) ->
times idf -> L2-normalised -> ``x @ coef.T + intercept`` -> softmax over the domains.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

KIND = "medmoe-router"
FORMAT = 2
#: first bytes of pickles (protocol 2+) and of zlib/gzip/bz2/xz/lzma-compressed joblib files
PICKLE_MAGIC = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class RouterError(ValueError):
    """A router file that cannot be used; one line naming the file and the fix."""


def _retrain(path: Path) -> str:
    return f"retrain it as JSON with `medmoe train-router --data <data> --out {path.with_suffix('.json')}`"


def refuse_pickles(path: Path) -> None:
    """Pickled routers (joblib, pickle) run code when loaded, so they are never opened."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if path.suffix.lower() in PICKLE_SUFFIXES or head.startswith(PICKLE_MAGIC):
        raise RouterError(f"{path}: router.path: a pickled router (joblib/pickle) runs code when loaded, so it is refused; fix: {_retrain(path)}")


def read_router_json(path: Path) -> dict[str, Any]:
    """The checked payload of a router file (never unpickles anything)."""
    if not path.is_file():
        raise RouterError(f"{path}: router.path: file not found; fix: train one with `medmoe train-router --data <data> --out {path.with_suffix('.json')}`")
    refuse_pickles(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouterError(f"{path}: router.path: not a JSON router file ({type(exc).__name__}); fix: {_retrain(path)}") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise RouterError(f'{path}: router.path: not a medmoe router (no "kind": "{KIND}"); fix: {_retrain(path)}')
    if payload.get("format") != FORMAT:
        raise RouterError(f"{path}: router.path: router format {payload.get('format')!r}, this release reads {FORMAT}; fix: {_retrain(path)}")
    for key in ("domains", "vectorizer", "linear"):
        if key not in payload:
            raise RouterError(f"{path}: router.path: field '{key}' is missing; fix: {_retrain(path)}")
    if payload["vectorizer"].get("norm") != "l2" or payload["vectorizer"].get("analyzer") != "word":
        raise RouterError(f"{path}: router.path: only word n-grams with L2 norm are supported; fix: {_retrain(path)}")
    return payload


def library_versions() -> dict[str, str]:
    import scipy
    import sklearn

    from medmoe_lm_eval import __version__

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "medmoe-lm-eval": __version__,
    }


def _round(values: np.ndarray, digits: int = 6) -> list[Any]:
    """Floats as short decimal strings in JSON; 6 significant digits move probabilities by < 1e-5."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=float).ravel()]


def write_router_json(path: Path, vectorizer: Any, classifier: Any, report: dict[str, Any]) -> None:
    """Save a fitted ``TfidfVectorizer`` and multinomial ``LogisticRegression`` as a router file."""
    domains = [str(c) for c in classifier.classes_]
    coef = np.asarray(classifier.coef_, dtype=float)
    if len(domains) == 2:  # binary: one weight row for classes_[1]; as a softmax, [-w/2, w/2]
        coef, intercept = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-classifier.intercept_[0] / 2, classifier.intercept_[0] / 2])
    else:
        intercept = np.asarray(classifier.intercept_, dtype=float)
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    payload = {
        "kind": KIND,
        "format": FORMAT,
        "domains": domains,
        "vectorizer": {
            "analyzer": "word",
            "ngram_range": list(vectorizer.ngram_range),
            "lowercase": bool(vectorizer.lowercase),
            "token_pattern": vectorizer.token_pattern,
            # the list itself, not "english": scikit-learn's built-in list may change between releases
            "stop_words": sorted(vectorizer.get_stop_words() or ()),
            "sublinear_tf": bool(vectorizer.sublinear_tf),
            "norm": vectorizer.norm,
            "terms": terms,
            "idf": _round(vectorizer.idf_),
        },
        "linear": {"coef": [_round(row) for row in coef], "intercept": _round(intercept)},
        "versions": library_versions(),
        "report": report,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


class LinearScorer:
    """Scores queries with a router file's vocabulary, idf and linear weights (no pickled objects)."""

    def __init__(self, path: Path, payload: dict[str, Any]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        vec, lin = payload["vectorizer"], payload["linear"]
        self.path = path
        self.domains = [str(d) for d in payload["domains"]]
        self.versions = dict(payload.get("versions") or {})
        self.sublinear = bool(vec["sublinear_tf"])
        self._counts = CountVectorizer(
            vocabulary={t: i for i, t in enumerate(vec["terms"])},
            ngram_range=tuple(vec["ngram_range"]),
            lowercase=bool(vec["lowercase"]),
            token_pattern=vec["token_pattern"],
            stop_words=list(vec.get("stop_words") or ()) or None,
            dtype=np.float64,
        )
        self._idf = np.asarray(vec["idf"], dtype=np.float64)
        self._coef_t = np.asarray(lin["coef"], dtype=np.float64).T.copy()
        self._intercept = np.asarray(lin["intercept"], dtype=np.float64)
        if self._coef_t.shape != (len(self._idf), len(self.domains)) or self._intercept.shape != (len(self.domains),):
            raise RouterError(f"{path}: router.path: weights do not match the vocabulary and domains; fix: {_retrain(path)}")

    def features(self, texts: Sequence[str]) -> Any:
        """The TF-IDF rows scikit-learn's ``TfidfVectorizer`` would give these texts."""
        x = self._counts.transform(list(texts)).tocsr()
        if self.sublinear:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x = x.multiply(self._idf).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return x.multiply(1.0 / norms[:, None]).tocsr()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.domains)))
        logits = np.asarray(self.features(texts) @ self._coef_t) + self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

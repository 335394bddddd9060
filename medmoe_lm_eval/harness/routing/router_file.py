"""The router file: plain JSON of TF-IDF vocabularies, their idf weights and a linear model's weights.

Why JSON and not a pickle: a router path can come from a results folder someone else wrote (the
Consult page rebuilds candidates from them), and unpickling runs whatever code the file names;
reading JSON runs none. JSON also frees users from the scikit-learn release that trained the
router: scoring needs only the documented tokenisation (``CountVectorizer`` with a fixed
vocabulary), numpy and scipy. The library versions that trained it are recorded in the file.

A scored query (format 3): for each feature block (``features``: word n-grams with stop words
dropped before n-grams are formed, as scikit-learn does, or ``char_wb`` character n-grams), counts
of the block's vocabulary -> ``1 + log(count)`` (sublinear tf) -> times idf -> L2-normalised; the
blocks side by side -> ``scale * (x @ coef.T + intercept)`` -> softmax over the domains. ``scale``
(``calibration``) was fitted on rows the weights never saw, so that the probabilities, which the
gate's threshold reads, are calibrated. Format 2 (one word block, no scale) is still read.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

KIND = "medmoe-router"
FORMAT = 3
#: formats this release reads (2: one word block in ``vectorizer``, no calibration)
READS = (2, 3)
ANALYZERS = ("word", "char_wb")
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
    if payload.get("format") not in READS:
        raise RouterError(
            f"{path}: router.path: router format {payload.get('format')!r}, this release reads {' and '.join(map(str, READS))}; fix: {_retrain(path)}"
        )
    old = payload["format"] == 2
    for key in ("domains", "vectorizer" if old else "features", "linear"):
        if key not in payload:
            raise RouterError(f"{path}: router.path: field '{key}' is missing; fix: {_retrain(path)}")
    if old:  # the same model: one word block, scale 1
        payload = {**payload, "features": [payload["vectorizer"]], "calibration": {"scale": 1.0}}
    blocks = payload["features"]
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, dict) and b.get("norm") == "l2" and b.get("analyzer") in ANALYZERS for b in blocks):
        raise RouterError(f"{path}: router.path: only {' and '.join(ANALYZERS)} n-grams with L2 norm are supported; fix: {_retrain(path)}")
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


def _block(vectorizer: Any) -> dict[str, Any]:
    """One fitted ``TfidfVectorizer`` as a feature block of the router file."""
    block: dict[str, Any] = {"analyzer": vectorizer.analyzer, "ngram_range": list(vectorizer.ngram_range), "lowercase": bool(vectorizer.lowercase)}
    if vectorizer.analyzer == "word":
        # the list itself, not "english": scikit-learn's built-in list may change between releases
        block |= {"token_pattern": vectorizer.token_pattern, "stop_words": sorted(vectorizer.get_stop_words() or ())}
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    return block | {"sublinear_tf": bool(vectorizer.sublinear_tf), "norm": vectorizer.norm, "terms": terms, "idf": _round(vectorizer.idf_)}


def write_router_json(path: Path, vectorizers: Sequence[Any], classifier: Any, report: dict[str, Any], scale: float = 1.0) -> None:
    """Save fitted ``TfidfVectorizer`` blocks and a linear classifier (``coef_``, ``intercept_``) as a router file.

    ``scale`` multiplies the logits before the softmax (the calibration); a multinomial logistic
    regression is calibrated as it is (1.0), one-vs-rest margins are not.
    """
    domains = [str(c) for c in classifier.classes_]
    coef = np.asarray(classifier.coef_, dtype=float)
    if len(domains) == 2:  # binary: one weight row for classes_[1]; as a softmax, [-w/2, w/2]
        coef, intercept = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-classifier.intercept_[0] / 2, classifier.intercept_[0] / 2])
    else:
        intercept = np.asarray(classifier.intercept_, dtype=float)
    payload = {
        "kind": KIND,
        "format": FORMAT,
        "domains": domains,
        "features": [_block(v) for v in vectorizers],
        "linear": {"coef": [_round(row) for row in coef], "intercept": _round(intercept)},
        "calibration": {"scale": float(f"{scale:.6g}")},
        "versions": library_versions(),
        "report": report,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


class _Block:
    """One feature block: a fixed-vocabulary counter and its idf, giving L2-normalised TF-IDF rows."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        options: dict[str, Any] = {"analyzer": spec["analyzer"], "ngram_range": tuple(spec["ngram_range"]), "lowercase": bool(spec["lowercase"])}
        if spec["analyzer"] == "word":
            options |= {"token_pattern": spec["token_pattern"], "stop_words": list(spec.get("stop_words") or ()) or None}
        self.counts = CountVectorizer(vocabulary={t: i for i, t in enumerate(spec["terms"])}, dtype=np.float64, **options)
        self.idf = np.asarray(spec["idf"], dtype=np.float64)
        self.sublinear = bool(spec["sublinear_tf"])

    def transform(self, texts: list[str]) -> Any:
        """The rows scikit-learn's ``TfidfVectorizer`` would give these texts.

        Weighted and normalised in place on the CSR arrays: scipy's elementwise ``multiply`` cost
        ten times the counting itself on a single query.
        """
        x = self.counts.transform(texts).tocsr()
        if self.sublinear:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= self.idf[x.indices]
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        norms = np.sqrt(np.bincount(rows, weights=x.data * x.data, minlength=x.shape[0]))
        x.data /= norms[rows]
        return x


class LinearScorer:
    """Scores queries with a router file's vocabularies, idf and linear weights (no pickled objects)."""

    def __init__(self, path: Path, payload: dict[str, Any]) -> None:
        lin = payload["linear"]
        self.path = path
        self.domains = [str(d) for d in payload["domains"]]
        self.versions = dict(payload.get("versions") or {})
        self._blocks = [_Block(spec) for spec in payload["features"]]
        self._coef_t = np.asarray(lin["coef"], dtype=np.float64).T.copy()
        self._intercept = np.asarray(lin["intercept"], dtype=np.float64)
        self._scale = float((payload.get("calibration") or {}).get("scale", 1.0))
        width = sum(len(b.idf) for b in self._blocks)
        if self._coef_t.shape != (width, len(self.domains)) or self._intercept.shape != (len(self.domains),) or not self._scale > 0:
            raise RouterError(f"{path}: router.path: weights do not match the vocabulary and domains; fix: {_retrain(path)}")

    def features(self, texts: Sequence[str]) -> Any:
        """The blocks' TF-IDF rows side by side (as a scikit-learn ``FeatureUnion`` of them)."""
        import scipy.sparse

        return scipy.sparse.hstack([b.transform(list(texts)) for b in self._blocks], format="csr")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.domains)))
        logits = np.tile(self._intercept, (len(texts), 1))
        start = 0
        for block in self._blocks:  # block by block: no stacked matrix to build
            logits += np.asarray(block.transform(list(texts)) @ self._coef_t[start : start + len(block.idf)])
            start += len(block.idf)
        logits *= self._scale
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

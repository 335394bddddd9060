"""How faithful a quantized copy is to its full-precision parent, document by document.

Equal accuracy can hide a broken copy: answers that flip in both directions cancel out (Dutta et
al., "Accuracy is not all you need", 2024), so a copy is judged against its parent on the same
documents (matched on doc_id and doc_hash, from lm-eval's per-sample logs), as llama.cpp's
``--kl-divergence`` judges a quantized GGUF:

* ``agreement``: share of documents with the same answer (multiple choice: the same top option;
  generation: the identical output text);
* flips: parent right and copy wrong (``flips_correct_to_wrong``) and the reverse, as counts, as
  rates with Wilson 95% intervals, and the accuracy change with its paired bootstrap interval and
  exact McNemar test (:mod:`.paired`); only for right/wrong metrics;
* ``kl_mean``/``kl_p99``: KL(parent || copy) between the answer distributions (softmax of the
  option log-likelihoods), mean and 99th percentile over documents;
* ``ppl_ratio``: copy / parent word perplexity on the perplexity tasks (``medmoe_ppl_*``), when
  both ran the same documents (same task hash and counts in the run key);
* whether the copy is good enough (Red Hat's "Give Me BF16 or Give Me Death", 2024; llama.cpp):
  ``recovery`` = copy / parent on the main metric with a paired 95% bootstrap interval,
  ``same_top`` = the agreement with its Wilson 95% interval, and a non-inferiority ``verdict`` at
  ``margin`` with the items that would settle a "cannot tell" (:mod:`.noninferiority`). Items of
  a task that names a cluster field are resampled by whole clusters (:mod:`.clusters`).

A copy names its parent in its adapter (``parent:``, written by ``medmoe quantize``). When no
candidate on the board has that name, the candidate whose single expert runs the recorded
``parent_model`` is the parent (``medmoe quantize`` without ``--parent`` records the folder's name,
which the full-precision candidate need not carry).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax
from statsmodels.stats.proportion import proportion_confint

from medmoe_lm_eval.analysis.clusters import ratio_interval
from medmoe_lm_eval.analysis.noninferiority import DEFAULT_MARGIN, matched_interval, n_to_settle, verdict, verdict_text
from medmoe_lm_eval.analysis.paired import discordance, is_binary, paired_difference
from medmoe_lm_eval.analysis.quality import main_metric_rows
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items
from medmoe_lm_eval.store.values import as_dict

#: The keys of ``medmoe fidelity --json``, in order.
JSON_KEYS = (
    "candidate", "parent", "task", "n_paired", "agreement", "flips_correct_to_wrong", "flips_wrong_to_correct", "kl_mean", "kl_p99", "ppl_ratio",
    "recovery", "recovery_ci_low", "recovery_ci_high", "same_top", "same_top_ci_low", "same_top_ci_high", "verdict", "margin", "n_to_settle",
)  # fmt: skip
PPL_METRICS = ("word_perplexity", "byte_perplexity")
_KEY = ["doc_id", "doc_hash"]
_PAIR_COLUMNS = ["score", "option_ll", "response", "cluster"]


@dataclass(frozen=True)
class FidelityRow:
    """One (copy, parent, task): the JSON figures (NaN / None where they do not apply) plus intervals."""

    candidate: str
    parent: str
    task: str
    n_paired: int
    agreement: float = math.nan
    flips_correct_to_wrong: int | None = None
    flips_wrong_to_correct: int | None = None
    kl_mean: float = math.nan
    kl_p99: float = math.nan
    ppl_ratio: float = math.nan
    metric: str = ""
    flip_cw_rate: float = math.nan
    flip_cw_low: float = math.nan
    flip_cw_high: float = math.nan
    flip_wc_rate: float = math.nan
    flip_wc_low: float = math.nan
    flip_wc_high: float = math.nan
    delta: float = math.nan  #: copy - parent on the task's main metric
    delta_low: float = math.nan
    delta_high: float = math.nan
    p_value: float = math.nan
    recovery: float = math.nan  #: copy / parent on the main metric
    recovery_ci_low: float = math.nan
    recovery_ci_high: float = math.nan
    same_top: float = math.nan  #: share of documents with the same answer (= agreement), Wilson 95% interval
    same_top_ci_low: float = math.nan
    same_top_ci_high: float = math.nan
    verdict: str | None = None  #: "non-inferior", "inferior" or "cannot tell" at ``margin`` (None: no paired scores)
    margin: float = math.nan
    n_to_settle: int | None = None  #: items that would settle a "cannot tell" (80% power)
    verdict_low: float = math.nan  #: the verdict's 95% interval of copy - parent (Agresti-Min for 0/1 scores)
    verdict_high: float = math.nan
    verdict_text: str = ""  #: "cannot tell with 300 items (about 2,100 would settle it)"
    n_clusters: int = 0  #: clusters resampled whole (0: items independent)

    def to_json(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {k: clean(getattr(self, k)) for k in JSON_KEYS}


def kl_divergence(parent_ll: Any, copy_ll: Any) -> float:
    """KL(parent || copy) in nats between the softmaxes of two option log-likelihood vectors."""
    lp, lq = log_softmax(np.asarray(parent_ll, dtype=float)), log_softmax(np.asarray(copy_ll, dtype=float))
    return float(np.sum(np.exp(lp) * (lp - lq)))


def _single_expert_models(results: ResultsSet, shown: set[str]) -> dict[str, str]:
    """Candidate -> the model its one expert runs (candidates on the board with exactly one expert)."""
    out: dict[str, str] = {}
    for info in results.runs.values():
        experts = info.record.adapter.get("experts") if info.record is not None else None
        if info.latest and info.candidate in shown and isinstance(experts, list) and len(experts) == 1:
            model = as_dict(experts[0]).get("model")
            if isinstance(model, str) and model:
                out[info.candidate] = os.path.normpath(model)
    return out


def _parent_of(candidate: str, adapter: dict[str, Any], shown: set[str], models: dict[str, str]) -> str | None:
    """The recorded parent's name when it is on the board, else the one candidate running the recorded parent model."""
    parent, parent_model = adapter.get("parent"), adapter.get("parent_model")
    named = parent if isinstance(parent, str) and parent and parent != candidate else None
    if named in shown or not (isinstance(parent_model, str) and parent_model):
        return named
    wanted = os.path.normpath(parent_model)
    matches = sorted(c for c, m in models.items() if m == wanted and c != candidate)
    return matches[0] if len(matches) == 1 else named


def copy_parents(results: ResultsSet) -> dict[str, str]:
    """Candidate -> its parent: the name its adapter records, or the candidate running its recorded ``parent_model``.

    A GGUF file and its dequantized full-precision folder name each other (the folder records the
    file it came from; the file's adapter names the folder as its full-precision parent): the folder,
    whose ``parent_model`` is a ``.gguf`` file, is the parent of that pair, not a copy.
    """
    shown = set(results.candidates())
    models = _single_expert_models(results, shown)
    out: dict[str, str] = {}
    from_gguf: set[str] = set()
    for info in results.runs.values():
        if not (info.latest and info.candidate in shown):
            continue
        adapter = info.record.adapter if info.record is not None else {}
        parent = _parent_of(info.candidate, adapter, shown, models)
        if parent is not None:
            out[info.candidate] = parent
            if str(adapter.get("parent_model") or "").endswith(".gguf"):
                from_gguf.add(info.candidate)
    return {c: p for c, p in out.items() if not (c in from_gguf and out.get(p) == c)}


def paired_items(items: pd.DataFrame, task: str, metric: str, parent: str, copy: str) -> pd.DataFrame:
    """The documents both answered: ``score``/``option_ll``/``response`` with ``_parent``/``_copy`` suffixes."""
    rows = items[(items["task"] == task) & (items["metric"] == metric)].reindex(columns=["candidate", *_KEY, *_PAIR_COLUMNS])
    side = {c: rows[rows["candidate"] == c].drop_duplicates(_KEY).set_index(_KEY)[_PAIR_COLUMNS] for c in (parent, copy)}
    return side[parent].join(side[copy], how="inner", lsuffix="_parent", rsuffix="_copy")


def _options_agree(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per document: same top option, and KL; None unless every pair has equal-length option vectors."""
    lp, lc = pairs["option_ll_parent"], pairs["option_ll_copy"]
    if not all(isinstance(p, tuple) and isinstance(c, tuple) and len(p) == len(c) > 0 for p, c in zip(lp, lc, strict=True)):
        return None
    same = np.array([int(np.argmax(p)) == int(np.argmax(c)) for p, c in zip(lp, lc, strict=True)])
    kl = np.array([kl_divergence(p, c) for p, c in zip(lp, lc, strict=True)])
    return same, kl


def _flips(parent: np.ndarray, copy: np.ndarray) -> dict[str, Any]:
    """Flip counts and rates with Wilson intervals."""
    n = len(parent)
    cw, wc = int(np.sum((parent == 1) & (copy == 0))), int(np.sum((parent == 0) & (copy == 1)))
    (cw_low, cw_high), (wc_low, wc_high) = (proportion_confint(k, n, alpha=0.05, method="wilson") for k in (cw, wc))
    return {
        "flips_correct_to_wrong": cw, "flips_wrong_to_correct": wc,
        "flip_cw_rate": cw / n, "flip_cw_low": float(cw_low), "flip_cw_high": float(cw_high),
        "flip_wc_rate": wc / n, "flip_wc_low": float(wc_low), "flip_wc_high": float(wc_high),
    }  # fmt: skip


def _same_top(agreement: float, n: int) -> dict[str, Any]:
    low, high = proportion_confint(round(agreement * n), n, alpha=0.05, method="wilson")
    return {"same_top": agreement, "same_top_ci_low": float(low), "same_top_ci_high": float(high)}


def _verdict_interval(parent: np.ndarray, copy: np.ndarray, low: float, high: float, clustered: bool) -> tuple[float, float]:
    """The interval the verdict reads: Agresti-Min for 0/1 scores (covering the cluster bootstrap's when clustered), else the bootstrap's."""
    if not is_binary(parent, copy):
        return low, high
    am_low, am_high = matched_interval(int(np.sum((parent == 1) & (copy == 0))), int(np.sum((parent == 0) & (copy == 1))), len(parent))
    if clustered:
        return min(float(am_low), low), max(float(am_high), high)
    return float(am_low), float(am_high)


def _judgement(parent: np.ndarray, copy: np.ndarray, clusters: np.ndarray | None, margin: float) -> dict[str, Any]:
    """copy - parent with its interval and test, recovery with its interval, and the verdict at ``margin``."""
    diff = paired_difference(parent, copy, clusters=clusters)
    low, high = ratio_interval(parent, copy, clusters if diff.n_clusters else None)
    v_low, v_high = _verdict_interval(parent, copy, diff.ci_low, diff.ci_high, bool(diff.n_clusters))
    judged = verdict(v_low, v_high, margin)
    d = discordance(parent, copy) if not diff.n_clusters else math.nan
    settle = n_to_settle(diff.delta, diff.n_paired, margin, d, diff.se) if judged == "cannot tell" else None
    return {
        "delta": diff.delta, "delta_low": diff.ci_low, "delta_high": diff.ci_high, "p_value": diff.p_value, "n_clusters": diff.n_clusters,
        "recovery": diff.b / diff.a if diff.a else math.nan, "recovery_ci_low": low, "recovery_ci_high": high,
        "verdict": judged, "margin": margin, "n_to_settle": settle, "verdict_text": verdict_text(judged, diff.n_paired, settle),
        "verdict_low": v_low, "verdict_high": v_high,
    }  # fmt: skip


def _clusters(pairs: pd.DataFrame) -> np.ndarray | None:
    labels = pairs.get("cluster_parent")
    return None if labels is None or labels.isna().all() else labels.to_numpy(dtype=object)


def pair_figures(pairs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> dict[str, Any]:
    """Fidelity figures of one task from :func:`paired_items` output (non-empty)."""
    out: dict[str, Any] = {"n_paired": len(pairs)}
    options = _options_agree(pairs)
    if options is not None:
        same, kl = options
        out.update(agreement=float(same.mean()), kl_mean=float(kl.mean()), kl_p99=float(np.percentile(kl, 99)))
    elif pairs["response_parent"].map(lambda r: isinstance(r, str)).all() and pairs["response_copy"].map(lambda r: isinstance(r, str)).all():
        out["agreement"] = float((pairs["response_parent"] == pairs["response_copy"]).mean())
    if "agreement" in out:
        out.update(_same_top(out["agreement"], len(pairs)))
    parent, copy = pairs["score_parent"].to_numpy(dtype=float), pairs["score_copy"].to_numpy(dtype=float)
    if is_binary(parent, copy):
        out.update(_flips(parent, copy))
    out.update(_judgement(parent, copy, _clusters(pairs), margin))
    return out


def _ppl_rows(results: ResultsSet, copy: str, parent: str) -> list[FidelityRow]:
    """Perplexity ratios on tasks both ran over the same documents (their run keys' task parts agree)."""
    frame = results.frame
    rows = frame[frame["candidate"].isin([copy, parent]) & frame["metric"].isin(PPL_METRICS) & (frame["filter"] == "none")]
    out = []
    for task, group in rows.groupby("task", sort=True):
        for metric in PPL_METRICS:
            side = group[group["metric"] == metric].drop_duplicates("candidate").set_index("candidate")
            if not {copy, parent} <= set(side.index):
                continue
            kc, kp = results.keys.get(str(side.at[copy, "run_key"])), results.keys.get(str(side.at[parent, "run_key"]))
            if kc is None or kp is None or kc.task_part() != kp.task_part():
                break
            value = side["value"].astype(float)
            ratio = float(value[copy] / value[parent])
            out.append(FidelityRow(copy, parent, str(task), int(kc.n_effective or 0), ppl_ratio=ratio, metric=metric))
            break
    return out


def _pair_rows(results: ResultsSet, items: pd.DataFrame, copy: str, parent: str, margin: float) -> list[FidelityRow]:
    main = main_metric_rows(results.frame[results.frame["candidate"].isin([copy, parent])])
    both = main.groupby("task").filter(lambda g: g["candidate"].nunique() == 2)
    out = []
    for task, group in both.groupby("task", sort=True):
        metric = str(group.loc[group["candidate"] == parent, "metric"].iloc[0])
        pairs = paired_items(items, str(task), metric, parent, copy)
        if not pairs.empty:
            out.append(FidelityRow(copy, parent, str(task), metric=metric, **pair_figures(pairs, margin)))
    return out


def _severity(row: FidelityRow) -> tuple[float, float, float]:
    """Sort key, worst first: lowest agreement, then largest KL, then the ratio furthest from 1."""
    agreement = row.agreement if math.isfinite(row.agreement) else 2.0
    kl = -row.kl_mean if math.isfinite(row.kl_mean) else 0.0
    ppl = -abs(math.log(row.ppl_ratio)) if math.isfinite(row.ppl_ratio) and row.ppl_ratio > 0 else 0.0
    return agreement, kl, ppl


def fidelity(results: ResultsSet, margin: float = DEFAULT_MARGIN) -> tuple[list[FidelityRow], list[str]]:
    """Every copy on the board against its parent, per task, copies and tasks worst first; plus notes.

    ``margin``: the loss (copy - parent, on the task's main metric) a copy may have and still be non-inferior.
    """
    parents = copy_parents(results)
    shown = set(results.candidates())
    notes = [f"{c}: parent {p!r} has no runs on this board" for c, p in sorted(parents.items()) if p not in shown]
    pairs = {c: p for c, p in parents.items() if p in shown}
    items, issues = load_items(results, sorted({*pairs, *pairs.values()}))
    notes += [str(i) for i in issues]
    per_copy = {c: _pair_rows(results, items, c, p, margin) + _ppl_rows(results, c, p) for c, p in pairs.items()}
    for copy, rows in sorted(per_copy.items()):
        if not rows:
            notes.append(f"{copy}: no documents shared with its parent {pairs[copy]!r} (paired figures need --log_samples on the same tasks)")
    ordered = sorted(
        (r for rows in per_copy.values() if rows for r in rows), key=lambda r: (min(_severity(x) for x in per_copy[r.candidate]), r.candidate, _severity(r))
    )
    return ordered, notes


def fidelity_table(rows: list[FidelityRow]) -> pd.DataFrame:
    """The rows as a frame (what the terminal and the Fidelity page show)."""
    return pd.DataFrame([asdict(r) for r in rows], columns=list(FidelityRow.__dataclass_fields__))

"""Per-item records from lm-eval's per-sample logs (``samples_<task>_<date>.jsonl`` beside a run).

lm-eval writes one line per document when a run keeps ``--log_samples``: its ``doc_id``,
``doc_hash`` (sha256 of the document), one field per metric with that document's score, and the
model's answers (``filtered_resps``: for multiple choice one ``[log-likelihood, is_greedy]`` pair
per option). Paired statistics need exactly these, matched across candidates on
(task, doc_id, doc_hash), so two candidates are only compared on the very same documents.

The samples file shares the results file's date stamp: ``results_<stamp>.json`` goes with
``samples_<task>_<stamp>.jsonl`` in the same folder (or ``<name>_<stamp>.json`` with its samples in
that folder, when ``--output_path`` named a file). Bad lines are skipped and counted, never fatal.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medmoe_lm_eval.benchmarks.metric_directions import within_bounds
from medmoe_lm_eval.jsonio import loads_data
from medmoe_lm_eval.store.files import read_jsonl
from medmoe_lm_eval.store.records import ReadIssue, ResultsSet
from medmoe_lm_eval.store.values import as_dict, number

#: Columns of an item frame: one row per run x task x document x metric.
ITEM_COLUMNS = ("run_id", "task", "doc_id", "doc_hash", "metric", "score", "n_choices", "option_ll", "subject", "response", "cluster")

#: Document fields that name a question's subject, first found wins (MedMCQA, MMLU, MedQA's step).
SUBJECT_FIELDS = ("subject_name", "subject", "meta_info")

#: Per-document fields lm-eval writes that are not metric scores.
_NOT_METRICS = frozenset({"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash", "prompt_hash", "target_hash"})

#: Metrics that describe how a run was made rather than how good it was (shown as badges, never ranked).
RUN_PROPERTY_METRICS = frozenset({"sandbox_isolated"})


@dataclass(frozen=True)
class ClusterSpec:
    """Which document fields name an item's cluster: a task's ``metadata.cluster_fields`` (items that
    share a source are not independent), and ``metadata.cluster_cut``, a separator after whose last
    occurrence the last field's text is cut away (MedQuAD's qid ``0000106-3`` -> document ``0000106``).

    Read from a results file as data: field names and the separator are only compared as text.
    """

    fields: tuple[str, ...]
    cut: str = ""

    @classmethod
    def from_metadata(cls, metadata: Any) -> ClusterSpec | None:
        meta = as_dict(metadata)
        fields, cut = meta.get("cluster_fields"), meta.get("cluster_cut", "")
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields) or not isinstance(cut, str):
            return None
        return cls(tuple(fields), cut)

    @classmethod
    def per_task(cls, configs: Mapping[str, Any]) -> dict[str, ClusterSpec]:
        """Task -> spec for the tasks of a results file's ``configs`` whose metadata names one."""
        specs = {str(t): cls.from_metadata(as_dict(c).get("metadata")) for t, c in configs.items()}
        return {t: s for t, s in specs.items() if s is not None}

    def label(self, doc: Any) -> str | None:
        """The document's cluster, None when a field is missing (the item is then a cluster of its own)."""
        if not isinstance(doc, dict):
            return None
        values = [doc.get(f) for f in self.fields]
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) for v in values):
            return None
        text = [str(v) for v in values]
        if self.cut and self.cut in text[-1]:
            text[-1] = text[-1].rsplit(self.cut, 1)[0]
        return "/".join(text)


def samples_path(results_file: str | Path, task: str) -> str:
    """Where lm-eval puts ``task``'s per-sample log for ``results_file`` (it may not exist).

    Plain string operations: the store calls this once per task of every results file it reads.
    """
    folder, name = os.path.split(os.fspath(results_file))
    stem = name[:-5] if name.endswith(".json") else name
    stamp = stem.rsplit("_", 1)[-1] if "_" in stem else ""
    return os.path.join(folder, f"samples_{task}_{stamp}.jsonl")


def _option_loglikelihoods(filtered: Any) -> tuple[float, ...] | None:
    """``[[ll, is_greedy], ...]`` (one pair per option) as log-likelihoods; None for other outputs."""
    if not isinstance(filtered, list) or not filtered:
        return None
    out = []
    for item in filtered:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        value = number(item[0])
        if math.isnan(value) or value == math.inf:  # -inf is a probability of 0; +inf or NaN no log-likelihood
            return None
        out.append(value)
    return tuple(out)


def _subject(doc: Any) -> str | None:
    """The document's subject (lm-eval keeps the document under ``doc``), when it has one."""
    if not isinstance(doc, dict):
        return None
    return next((str(doc[f]) for f in SUBJECT_FIELDS if isinstance(doc.get(f), str) and doc[f]), None)


def _response(filtered: Any) -> str | None:
    """A generation task's (filtered) output text; None for log-likelihood answers."""
    first = filtered[0] if isinstance(filtered, list) and filtered else None
    return first if isinstance(first, str) else None


def _scores(line: dict[str, Any], metrics: Iterable[str] | None) -> dict[str, float] | None:
    """The line's numeric scores; ``None`` when one cannot be its metric (an ``acc`` of 7: malformed)."""
    names = metrics if metrics is not None else (k for k in line if k not in _NOT_METRICS)
    out = {}
    for name in names:
        if name in RUN_PROPERTY_METRICS:
            continue
        value = line.get(name)
        if isinstance(value, (bool, int, float)) and math.isfinite(value):
            if not within_bounds(name, float(value)):
                return None
            out[name] = float(value)
    return out


def _item_rows(line: Any, task: str, run_id: str, cluster: ClusterSpec | None = None) -> list[dict[str, Any]] | None:
    """A line's item rows; ``None`` for a line not shaped as lm-eval writes it (a file from elsewhere)."""
    if not isinstance(line, dict) or not isinstance(line.get("doc_hash"), str):
        return None
    doc_id = line.get("doc_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, int):  # the pairing key: lm-eval's index of the document
        return None
    declared = [m for m in line["metrics"] if isinstance(m, str)] if isinstance(line.get("metrics"), list) else None
    scores = _scores(line, declared)
    if scores is None:
        return None
    options = _option_loglikelihoods(line.get("filtered_resps"))
    base = {"run_id": run_id, "task": task, "doc_id": line["doc_id"], "doc_hash": line["doc_hash"]}
    n_choices = len(options) if options is not None else math.nan
    extra = {
        "subject": _subject(line.get("doc")), "response": _response(line.get("filtered_resps")),
        "cluster": cluster.label(line.get("doc")) if cluster is not None else None,
    }  # fmt: skip
    return [dict(base, metric=m, score=s, n_choices=n_choices, option_ll=options, **extra) for m, s in scores.items()]


def read_samples(path: str | Path, task: str, run_id: str, issues: list[ReadIssue] | None = None, cluster: ClusterSpec | None = None) -> pd.DataFrame:
    """One per-sample log as an item frame (:data:`ITEM_COLUMNS`); bad lines counted in one issue."""
    issues = issues if issues is not None else []

    def parse(text: str) -> list[dict[str, Any]] | None:
        return _item_rows(loads_data(text), task, run_id, cluster) if text.strip() else []  # a blank line: no rows, not malformed

    found = read_jsonl(path, parse, "per-sample log", "per-sample", issues)
    frame = pd.DataFrame.from_records([row for rows in found for row in rows], columns=list(ITEM_COLUMNS))
    return frame.drop_duplicates(["doc_id", "doc_hash", "metric"], keep="first")


def empty_items() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ITEM_COLUMNS})


@functools.lru_cache(maxsize=512)
def _cached(path: str, stamp: tuple[float, int], task: str, run_id: str, cluster: ClusterSpec | None) -> tuple[pd.DataFrame, tuple[ReadIssue, ...]]:
    issues: list[ReadIssue] = []
    return read_samples(path, task, run_id, issues, cluster), tuple(issues)


def load_items(results: ResultsSet, candidates: Iterable[str] | None = None, tasks: Iterable[str] | None = None) -> tuple[pd.DataFrame, list[ReadIssue]]:
    """Per-item records of the runs on the board (``results.frame``), with a ``candidate`` column.

    Runs without a per-sample log contribute nothing here; :func:`missing_samples` names them.
    Each file is read once per process while it is unchanged (path, mtime and size as the key).
    """
    runs = _board_runs(results, candidates, tasks)
    frames, issues = [], []
    for cand, task, run_id, path in runs[runs["samples_file"].notna()].itertuples(index=False):
        try:
            st = os.stat(path)
        except OSError:
            issues.append(ReadIssue(run_id, f"per-sample log {Path(path).name} vanished"))
            continue
        info = results.runs.get(run_id)
        frame, found = _cached(path, (st.st_mtime, st.st_size), task, run_id, info.clusters.get(task) if info is not None else None)
        frames.append(frame.assign(candidate=cand))
        issues.extend(found)
    if not frames:
        return empty_items().assign(candidate=pd.Series(dtype=object)), issues
    return pd.concat(frames, ignore_index=True), issues


def missing_samples(results: ResultsSet, candidates: Iterable[str] | None = None, tasks: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(candidate, task) pairs on the board whose run kept no per-sample log."""
    runs = _board_runs(results, candidates, tasks)
    return sorted(zip(runs.loc[runs["samples_file"].isna(), "candidate"], runs.loc[runs["samples_file"].isna(), "task"], strict=True))


def _board_runs(results: ResultsSet, candidates: Iterable[str] | None, tasks: Iterable[str] | None) -> pd.DataFrame:
    frame = results.frame
    if frame.empty:
        return pd.DataFrame(columns=["candidate", "task", "run_id", "samples_file"])
    rows = frame[~frame["is_group"].astype(bool)]
    if candidates is not None:
        rows = rows[rows["candidate"].isin(list(candidates))]
    if tasks is not None:
        rows = rows[rows["task"].isin(list(tasks))]
    return rows[["candidate", "task", "run_id", "samples_file"]].drop_duplicates(["candidate", "task"])

"""Hand-built results folders for ranking audits: every answer, count and figure chosen by the test.

Each run is written in lm-eval's on-disk layout (``<candidate>/results_<stamp>.json`` with
``config.medmoe``, the efficiency profile, ``n-samples``, ``configs``, ``n-shot``,
``task_hashes``, and ``samples_<task>_<stamp>.jsonl`` with ``doc_id``, ``doc_hash``, ``acc`` and
one ``[log-likelihood, is_greedy]`` pair per option), so the store reads it as it reads a real
run. A test states the correct answers per document and computes the expected ranking by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TaskRun:
    """One task of one run: per-document 0/1 answers (with a per-sample log) or an aggregate only."""

    correct: list[int] | None = None  #: None: no per-sample log (give ``acc`` and ``n``)
    acc: float | None = None
    stderr: float | None = None
    n: int | None = None
    doc_ids: list[int] | None = None  #: default 0..len-1
    content: str = "q"  #: what the documents' hashes are made of (other data: another string)
    k: int = 4  #: options per document in the per-sample log
    choices: list[str] | str | None = field(default_factory=lambda: ["a", "b", "c", "d"])  #: config doc_to_choice
    shots: int = 0
    limit: float | None = None
    confidence: list[float] | None = None  #: top option's probability per document (calibration)
    source: str = "hub"
    metrics: tuple[str, ...] = ("acc",)  #: per-sample metric fields, each holding the document's 0/1 answer

    def n_docs(self) -> int:
        return len(self.correct) if self.correct is not None else int(self.n or 0)


def _doc_hash(content: str, doc_id: int) -> str:
    return hashlib.sha256(f"{content}-{doc_id}".encode()).hexdigest()


def _option_ll(k: int, correct: int, confidence: float | None) -> list[list]:
    """Log-likelihoods whose softmax puts ``confidence`` on the chosen option (option 0 if correct)."""
    top = 0.7 if confidence is None else confidence
    rest = (1.0 - top) / (k - 1)
    probs = [top] + [rest] * (k - 1) if correct else [rest, top] + [rest] * (k - 2)
    return [[math.log(p), i == 0] for i, p in enumerate(probs)]


def write_run(
    root: Path,
    candidate: str,
    tasks: dict[str, TaskRun],
    stamp: str = "2026-01-01T00-00-00.000000",
    profile: dict | None = None,
    adapter: str | None = None,
) -> Path:
    """Write one run of ``candidate`` (its own adapter sha unless ``adapter`` is given); returns the results file."""
    folder = root / candidate
    folder.mkdir(parents=True, exist_ok=True)
    results, configs, n_samples, hashes = {}, {}, {}, {}
    for task, run in tasks.items():
        n = run.n_docs()
        acc = sum(run.correct) / n if run.correct is not None else run.acc
        se = run.stderr if run.stderr is not None else (math.sqrt(acc * (1 - acc) / max(n - 1, 1)) if run.correct is not None else 0.02)
        results[task] = {"alias": task, "acc,none": acc, "acc_stderr,none": se}
        meta = {"version": 1.0, "domain": "biomedical"}
        if run.source == "bundled":
            meta.update(benchmark="medmcqa", medmoe_data="bundled")
        configs[task] = {"task": task, "output_type": "multiple_choice", "doc_to_choice": run.choices, "metadata": meta,
                         "dataset_path": "hub/" + task}  # fmt: skip
        n_samples[task] = {"original": n if run.limit is None else 1000, "effective": n}
        if run.correct is not None:
            hashes[task] = hashlib.sha256(f"{run.content}-{n}".encode()).hexdigest()
            ids = run.doc_ids or list(range(n))
            with open(folder / f"samples_{task}_{stamp}.jsonl", "w", encoding="utf-8") as fh:
                for i, (doc_id, ok) in enumerate(zip(ids, run.correct, strict=True)):
                    conf = run.confidence[i] if run.confidence else None
                    line = {"doc_id": doc_id, "doc_hash": _doc_hash(run.content, doc_id), **{m: float(ok) for m in run.metrics}, "metrics": list(run.metrics),
                            "filtered_resps": _option_ll(run.k, ok, conf), "doc": {"question": f"{run.content}-{doc_id}"}}  # fmt: skip
                    fh.write(json.dumps(line) + "\n")
    limits = {run.limit for run in tasks.values()}
    data = {
        "results": results, "configs": configs, "versions": {t: 1.0 for t in tasks}, "n-shot": {t: r.shots for t, r in tasks.items()},
        "n-samples": n_samples, "task_hashes": hashes, "higher_is_better": {t: {"acc": True} for t in tasks},
        "config": {
            "model": "medmoe", "model_args": f"adapter={candidate}.yaml", "limit": next(iter(limits)) if len(limits) == 1 else None,
            "medmoe": {"candidate": candidate, "kind": "single", "label": "full",
                       "adapter": {"name": candidate, "kind": "single", "sha256": adapter or hashlib.sha256(candidate.encode()).hexdigest()},
                       "experts": {"e": {"backend": "hf", "num_parameters": 1e6}}},
            "medmoe_profile": profile or {"enabled": True},
        },
        "lm_eval_version": "0.4.13",
    }  # fmt: skip
    path = folder / f"results_{stamp}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def profile(
    tasks: list[str],
    requests_per_s: float = math.nan,
    latency: list[float] | None = None,
    memory: float | None = None,
    energy_j: float | None = None,
    docs: int = 300,
) -> dict:
    """An efficiency profile with the figures a test sets (the rest unmeasured)."""
    per_task, stream = {}, {}
    for task in tasks:
        per_task[task] = {"requests": docs, "docs": docs}
        if math.isfinite(requests_per_s):
            per_task[task]["requests_per_s"] = requests_per_s
        if energy_j is not None:
            per_task[task]["energy_j"] = energy_j
        if latency:
            ordered = sorted(latency)
            mid = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
            stream[task] = {"streamed": False, "e2e_ms": {"p50": mid}, "e2e_samples_ms": list(latency)}
    out = {"enabled": True, "served": True, "tasks": per_task, "single_stream": stream}
    if memory is not None:
        out["memory"] = {"peak_rss_bytes": memory}
    return out

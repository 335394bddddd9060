"""What a ranking may put side by side on one task: the same settings, the same documents, one k.

Per task of a use case:

* **settings**: candidates are ranked together only when their runs share the task part of the
  comparability key that changes what is asked (task version, data source, n-shot, generation
  kwargs, chat template: the frame's ``task_settings``); the largest group is kept, every other run
  is left out with the reason;
* **one chance correction**: the task's number of options ``k`` comes from the task configs (a
  fixed ``doc_to_choice`` list) or the per-sample logs (options per document) and is used for every
  run of the task; a task whose ``k`` cannot be known, or whose runs disagree on it, is left out;
* **documents**: runs with per-sample logs are ranked on the documents all of them answered,
  matched on ``(doc_id, doc_hash)``, with each candidate's dropped count said; a ``doc_id`` seen with
  two ``doc_hash``es (other data) is never compared, and said. A run without a per-sample log is
  kept only when its document set provably matches (same limit and count as the paired set, which
  lost nothing); otherwise it is left out with the reason. A task brings at most
  :data:`MAX_TASK_ITEMS` documents (an evenly spaced subset, said), which bounds memory and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.clusters import cluster_codes, item_clusters
from medmoe_lm_eval.analysis.coverage import Coverage, choose_coverage
from medmoe_lm_eval.analysis.paired import MIN_PAIRED
from medmoe_lm_eval.analysis.quality import CHANCE_CORRECTED
from medmoe_lm_eval.benchmarks.calibration import N_BINS, option_probabilities
from medmoe_lm_eval.store.run_key import SOURCE_RANK

#: documents one task may bring to a ranking (more are thinned evenly; the bootstrap is then
#: already far finer than any difference a user would act on: a standard error below 0.4 points)
MAX_TASK_ITEMS = 20_000


#: frame columns the matching reads, NaN where a frame lacks them
_OPTIONAL = ("limit", "n_samples", "stderr", "n_choices", "data_source", "data_origin", "num_fewshot", "task_version")


@dataclass(frozen=True)
class TaskEvidence:
    """One task's paired documents: raw scores (documents x candidates with logs) and its chance level."""

    task: str
    metric: str
    chance: float  #: the guessing accuracy (mean of 1/k over the documents); 0 for other metrics
    raw: pd.DataFrame
    ece_gaps: np.ndarray | None = None  #: documents x candidates x bins (see rank_intervals.TaskDraws)
    dropped: dict[str, int] = field(default_factory=dict)
    #: cluster code per document (the task's ``cluster_fields``), so the rank bootstrap draws whole clusters; None: items independent
    clusters: np.ndarray | None = None


@dataclass
class Evidence:
    tasks: dict[str, TaskEvidence] = field(default_factory=dict)
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)  #: (candidate, task) -> why
    tasks_left_out: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def settings_groups(best: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(candidate, task) -> why, for runs whose task settings differ from the task's largest group."""
    if "task_settings" not in best:
        return {}
    out = {}
    for task, rows in best.groupby("task", sort=True):
        settings = rows["task_settings"].fillna("")
        if settings.nunique() < 2:
            continue
        sizes = settings.value_counts()
        rank_of = rows.groupby(settings)["data_source"].agg(lambda s: min(SOURCE_RANK.get(str(v), 1) for v in s))
        keep = min(sizes.index, key=lambda s: (-sizes[s], rank_of[s], s))
        ref = rows[settings == keep].iloc[0]
        for _, row in rows[settings != keep].iterrows():
            out[(row["candidate"], task)] = f"{task}: run under other settings than the others ({_differences(row, ref)})"
    return out


def _differences(row: pd.Series, ref: pd.Series) -> str:
    said = []
    if row.get("data_source") != ref.get("data_source") or row.get("data_origin") != ref.get("data_origin"):
        said.append(f"data {row.get('data_origin')} vs {ref.get('data_origin')}")
    if row.get("num_fewshot") != ref.get("num_fewshot") and not (pd.isna(row.get("num_fewshot")) and pd.isna(ref.get("num_fewshot"))):
        said.append(f"{row.get('num_fewshot'):g}-shot vs {ref.get('num_fewshot'):g}-shot")
    if row.get("task_version") != ref.get("task_version"):
        said.append(f"task version {row.get('task_version')} vs {ref.get('task_version')}")
    return ", ".join(said) or "generation kwargs or chat template differ"


def task_chance(rows: pd.DataFrame, per_doc_k: pd.Series | None) -> tuple[float, str | None]:
    """The task's guessing accuracy and, when it cannot be known, why the task is left out."""
    if not rows["metric"].isin(CHANCE_CORRECTED).all():
        return 0.0, None
    configured = set(pd.to_numeric(rows.get("n_choices", pd.Series(dtype=float)), errors="coerce").dropna().tolist())
    logged = per_doc_k.dropna() if per_doc_k is not None else pd.Series(dtype=float)
    if len(configured) > 1:
        return np.nan, f"runs disagree on the number of options ({', '.join(f'{k:g}' for k in sorted(configured))})"
    if len(logged):
        if configured and set(logged.unique()) != configured:
            return (
                np.nan,
                f"the task config says {next(iter(configured)):g} options, the per-sample logs {', '.join(f'{k:g}' for k in sorted(logged.unique()))}",
            )
        return float((1.0 / logged[logged > 1]).sum() / len(logged)), None
    if configured and next(iter(configured)) > 1:
        return 1.0 / next(iter(configured)), None
    return np.nan, "number of options unknown (doc_to_choice is a template and no run kept a per-sample log): not chance-corrected alike, left out"


def _pivot(chosen: pd.DataFrame, cands: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Documents x candidates of ``chosen`` item rows, and how many doc_ids carry two contents."""
    wide = chosen.pivot_table(index=["doc_id", "doc_hash"], columns="candidate", values="score", aggfunc="first").reindex(columns=list(cands))
    hashes = wide.index.get_level_values("doc_id").value_counts()
    return wide, int((hashes > 1).sum())


def _ece_gaps(items: pd.DataFrame, index: pd.MultiIndex, cands: Sequence[str]) -> np.ndarray | None:
    """(documents, candidates, bins) of confidence - correct in each document's bin; None when a
    candidate lacks the option log-likelihoods of a document."""
    acc = items[items["metric"] == "acc"].set_index(["doc_id", "doc_hash", "candidate"])
    out = np.zeros((len(index), len(cands), N_BINS))
    rows = np.arange(len(index))
    for j, cand in enumerate(cands):
        keyed = acc.xs(cand, level="candidate") if cand in acc.index.get_level_values("candidate") else acc.iloc[0:0].droplevel("candidate")
        mine = keyed[~keyed.index.duplicated()].reindex(index)
        if mine["option_ll"].map(lambda o: isinstance(o, tuple) and len(o) > 1).sum() < len(index):
            return None
        conf = mine["option_ll"].map(lambda o: float(np.max(option_probabilities(o)))).to_numpy(dtype=float)
        if not np.isfinite(conf).all():
            return None
        bins = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
        out[rows, j, bins] = conf - mine["score"].to_numpy(dtype=float)
    return out


def _thin(wide: pd.DataFrame, task: str, notes: list[str]) -> pd.DataFrame:
    if len(wide) <= MAX_TASK_ITEMS:
        return wide
    keep = np.unique(np.linspace(0, len(wide) - 1, MAX_TASK_ITEMS).round().astype(int))
    notes.append(f"{task}: {len(wide):,} documents in common; ranked on an evenly spaced {len(keep):,} of them (at most {MAX_TASK_ITEMS:,} per task)")
    return wide.sort_index().iloc[keep]


#: why a task of a single paired document is left out of a ranking
TOO_FEW = "one item shows a difference but not its spread, so it cannot rank"


def match_documents(task: str, rows: pd.DataFrame, items: pd.DataFrame, chance_of: dict[str, float], ev: Evidence, with_ece: bool) -> None:
    """Fill ``ev`` for one task: the paired documents, dropped counts, and runs that cannot be matched."""
    metric = str(rows["metric"].iloc[0])
    cands = list(rows["candidate"])
    chosen = items[(items["task"] == task) & (items["metric"] == metric) & items["candidate"].isin(cands)] if not items.empty else items
    have = set(chosen["candidate"].unique()) if len(chosen) else set()
    logged = [c for c in cands if c in have]
    wide, mismatched = _pivot(chosen, logged) if logged else (pd.DataFrame(), 0)
    common = wide.dropna() if logged else wide
    if mismatched:
        ev.notes.append(f"{task}: {mismatched} doc_id(s) carry different documents (doc_hash) across runs: never compared, dropped")
    if logged and common.empty:
        ev.tasks_left_out[task] = "the runs with per-sample logs share no document"
        return
    if logged and len(common) < MIN_PAIRED:
        ev.tasks_left_out[task] = f"{len(common)} document in common: {TOO_FEW}"
        return
    counts = [_known(n) for n in rows["n_samples"]] if not logged else []
    if counts and all(n is not None and n < MIN_PAIRED for n in counts):
        ev.tasks_left_out[task] = f"one document per run: {TOO_FEW}"
        return
    dropped = {c: int(wide[c].notna().sum()) - len(common) for c in logged}
    unlogged = rows[~rows["candidate"].isin(logged)]
    if logged:
        lost = any(dropped.values())
        n_ref = len(common)
        limits = set(rows.loc[rows["candidate"].isin(logged), "limit"].fillna(-1))
        for _, r in unlogged.iterrows():
            if lost or r.get("n_samples") != n_ref or {r.get("limit") if pd.notna(r.get("limit")) else -1} != limits:
                ev.left_out[(r["candidate"], task)] = (
                    f"{task}: kept no per-sample log and scored {_fmt(_known(r.get('n_samples')))} document(s); the others are ranked on "
                    f"{n_ref} common ones, which its average cannot be matched to"
                )
    elif len(unlogged) > 1:
        groups: dict[tuple[float | None, float | None], list[str]] = {}
        for _, r in unlogged.iterrows():
            groups.setdefault((_known(r.get("n_samples")), _known(r.get("limit"))), []).append(r["candidate"])
        keep = max(groups, key=lambda g: (len(groups[g]), g[0] or 0.0))
        for g, members in groups.items():
            for cand in members if g != keep else ():
                ev.left_out[(cand, task)] = (
                    f"{task}: scored {_fmt(g[0])} document(s) without a per-sample log, the others {_fmt(keep[0])}: not the same documents"
                )
    common = _thin(common, task, ev.notes)
    gaps = _ece_gaps(items[(items["task"] == task) & items["candidate"].isin(logged)], common.index, logged) if with_ece and logged else None
    labels = item_clusters(items, task, common.index) if logged else None
    clusters = None if labels is None else cluster_codes(labels.to_numpy(dtype=object), len(common))
    ev.tasks[task] = TaskEvidence(task, metric, chance_of[task], common.astype(float), gaps, {c: n for c, n in dropped.items() if n}, clusters)


def _known(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]


def _fmt(value: float | None) -> str:
    return "an unknown number of" if value is None else f"{value:g}"


def per_doc_k(items: pd.DataFrame, task: str) -> pd.Series | None:
    """Options per document of ``task`` from the per-sample logs (None without any)."""
    if items.empty:
        return None
    mine = items[(items["task"] == task)].drop_duplicates(["doc_id", "doc_hash"])
    k = pd.to_numeric(mine["n_choices"], errors="coerce").dropna()
    return k if len(k) else None


def gather(best: pd.DataFrame, items: pd.DataFrame | None, ece_tasks: Sequence[str] = ()) -> tuple[pd.DataFrame, Evidence, Coverage]:
    """The rows a ranking counts (candidates x tasks it may compare), the paired evidence, the coverage.

    ``best`` is :func:`.quality.main_metric_rows` of the use case's scope; ``ece_tasks`` the tasks
    whose calibration is weighed (their items also give each draw's ECE). Documents are matched
    among the candidates the coverage ranks; a run that cannot be matched leaves, and the
    coverage is chosen again without it.
    """
    items = items if items is not None else pd.DataFrame(columns=["candidate", "task", "metric", "doc_id", "doc_hash", "score", "n_choices", "option_ll"])
    best = best.reindex(columns=list(dict.fromkeys([*best.columns, *_OPTIONAL])))  # frames built by hand or from before a column
    ev = Evidence()
    ev.left_out.update(settings_groups(best))
    chance: dict[str, float] = {}
    for task, task_rows in best.groupby("task", sort=True):
        chance[str(task)], why = task_chance(task_rows, per_doc_k(items, str(task)))
        if why:
            ev.tasks_left_out[str(task)] = why
    while True:
        rows = best[[(c, t) not in ev.left_out and t not in ev.tasks_left_out for c, t in zip(best["candidate"], best["task"], strict=True)]]
        coverage = choose_coverage({str(c): set(rows.loc[rows["candidate"] == c, "task"]) for c in best["candidate"].unique()})
        rows = rows[rows["candidate"].isin(coverage.ranked) & rows["task"].isin(coverage.tasks)]
        before = (len(ev.left_out), len(ev.tasks_left_out))
        ev.tasks = {}
        for task, task_rows in rows.groupby("task", sort=True):
            match_documents(str(task), task_rows, items, chance, ev, str(task) in set(ece_tasks))
        if (len(ev.left_out), len(ev.tasks_left_out)) == before:
            ev.notes = list(dict.fromkeys(ev.notes))  # said once, however many passes it took
            return rows, ev, coverage

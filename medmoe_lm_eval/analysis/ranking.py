"""Use-case rankings whose order is the order the data supports, over the tidy results frame.

Everything here takes and returns pandas objects (reading no files except through the store), so
the Streamlit app, ``medmoe rank`` and the static export show the very same numbers.

How a use case scores a candidate (method :data:`METHOD`):

* only comparable runs meet on a task (:mod:`.comparable`): the same task settings, the same
  documents (paired on ``(doc_id, doc_hash)``, dropped counts said), one chance correction per
  task; only tasks every ranked candidate ran count (:mod:`.coverage`);
* wins are decided per task on accuracy over the paired documents (a count over one number of
  documents: equal counts are equal scores, whatever the chance correction, which is monotone
  within a task and only shown); every weighted figure becomes a HELM win rate among the
  candidates within the use case's hard limits (ties half). Measured figures tie inside their
  noise (:mod:`.tolerance`); calibration is recomputed on each bootstrap draw (:mod:`.scoring`);
* score = the weighted mean of those win rates; rank = 1 + the number of candidates
  significantly better by a max-t bootstrap over every pair (:mod:`.rank_intervals`), so
  candidates not told apart share a rank number; the rank range is the joint 95% set.

Hard limits (``"memory <= 8 GB"``) leave a candidate listed but unscored; ``accuracy`` limits hold
only when every counted task's main metric meets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.calibration import ece_by_candidate
from medmoe_lm_eval.analysis.comparable import Evidence, gather
from medmoe_lm_eval.analysis.coverage import Coverage
from medmoe_lm_eval.analysis.latency import RESAMPLED, figure_intervals
from medmoe_lm_eval.analysis.quality import main_metric_rows
from medmoe_lm_eval.analysis.rank_intervals import (
    N_BOOT,
    TaskDraws,
    certain_beats,
    draw_components,
    figure_win_rates,
    joint_ranks,
    tied_with_leader,
    win_rate_scores,
)
from medmoe_lm_eval.analysis.scoring import ece_figure, fixed_parts
from medmoe_lm_eval.analysis.use_cases import FIGURES, UseCase
from medmoe_lm_eval.analysis.why import explain
from medmoe_lm_eval.benchmarks.metric_directions import PERCENT_SCALE_METRICS
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items, missing_samples

METHOD = "HELM mean win rate (per-task accuracy on paired documents; measured figures tie inside their noise)"

__all__ = [
    "METHOD",
    "Ranking",
    "candidate_figures",
    "figure_win_rate",
    "main_metric_rows",
    "pareto_front",
    "rank_results",
    "rank_use_case",
    "scope_frame",
    "win_rates",
]


def win_rates(table: pd.DataFrame, directions: Mapping[str, bool | None]) -> pd.Series:
    """Mean win rate per row of ``table`` (rows: candidates, columns: figures), HELM's rules:
    columns without a direction or with fewer than two values are skipped, ties count half, and a
    candidate's result is the mean over the columns where it has a value."""
    scores: dict[str, pd.Series] = {}
    for column in table.columns:
        higher = directions.get(column)
        values = pd.to_numeric(table[column], errors="coerce").dropna()
        if higher is None or len(values) < 2:
            continue
        signed = values if higher else -values
        scores[column] = (signed.rank(method="average") - 1.0) / (len(values) - 1)
    if not scores:
        return pd.Series(np.nan, index=table.index, name="win_rate")
    return pd.DataFrame(scores).reindex(table.index).mean(axis=1).rename("win_rate")


def task_win_rates(frame: pd.DataFrame) -> pd.Series:
    """Mean win rate of each candidate over the tasks' main metrics (all higher-is-better)."""
    best = main_metric_rows(frame)
    if best.empty:
        return pd.Series(dtype=float, name="win_rate")
    wide = best.pivot_table(index="candidate", columns="task", values="quality", aggfunc="first")
    return win_rates(wide, {task: True for task in wide.columns})


def figure_win_rate(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Share of the other candidates each one beats on one figure (ties half; missing = below all):
    :func:`.rank_intervals.figure_win_rates` of one row, as a Series."""
    numeric = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    return pd.Series(figure_win_rates(numeric, higher_is_better), index=values.index, dtype=float)


def pareto_front(points: pd.DataFrame, maximize: Sequence[str] = (), minimize: Sequence[str] = ()) -> pd.Series:
    """True for rows no other row dominates (at least as good everywhere, better somewhere).

    Rows with a missing value on any axis are never on the front.
    """
    axes = list(maximize) + list(minimize)
    on_front = pd.Series(False, index=points.index, name="pareto")
    if not axes or points.empty:
        return on_front
    data = points[axes].apply(pd.to_numeric, errors="coerce")
    data[list(minimize)] = -data[list(minimize)]
    valid = data.dropna()
    values = valid.to_numpy(dtype=float)
    for i, row in enumerate(values):
        others = np.delete(values, i, axis=0)
        dominated = np.any(np.all(others >= row, axis=1) & np.any(others > row, axis=1))
        on_front.loc[valid.index[i]] = not dominated
    return on_front


def scope_frame(frame: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """The rows a use case looks at: its domains and tasks (all when it names none)."""
    rows = frame
    if use_case.domains:
        rows = rows[rows["domain"].isin(use_case.domains)]
    if use_case.tasks:
        rows = rows[rows["task"].isin(use_case.tasks)]
    return rows


FIGURE_COLUMNS = [
    "accuracy",
    "latency_ms",
    "ttft_ms",
    "batch_latency_ms",
    "peak_memory_bytes",
    "energy_per_request_j",
    "energy_per_correct_j",
    "generated_tokens_per_s",
    "requests_per_s",
    "num_parameters",
    "tasks",
    "kind",
]


def candidate_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: the figures use cases limit, from its main-metric rows.

    ``accuracy`` is the *lowest* main metric over its tasks (an accuracy limit must hold on every
    task; a mean would mix accuracy with ROUGE); latency, energy, throughput: mean over tasks;
    memory: the highest peak; ``tasks``: how many tasks it ran.
    """
    best = main_metric_rows(frame)
    if best.empty:
        return pd.DataFrame(columns=FIGURE_COLUMNS).rename_axis("candidate")
    best = best.reindex(
        columns=list(dict.fromkeys([*best.columns, "ttft_ms_p50", "batch_latency_ms_p50", "energy_per_request_j"]))
    )  # frames from before these figures
    grouped = best.groupby("candidate", sort=True)
    return pd.DataFrame(
        {
            "accuracy": grouped["accuracy"].min(),
            "latency_ms": grouped["latency_ms_p50"].mean(),  # single-stream E2E p50 (profiling.task_efficiency)
            "ttft_ms": grouped["ttft_ms_p50"].mean(),
            "batch_latency_ms": grouped["batch_latency_ms_p50"].mean(),
            "peak_memory_bytes": grouped["peak_memory_bytes"].max(),
            "energy_per_request_j": grouped["energy_per_request_j"].mean(),
            "energy_per_correct_j": grouped["energy_per_correct_j"].mean(),
            "generated_tokens_per_s": grouped["generated_tokens_per_s"].mean(),
            "requests_per_s": grouped["requests_per_s"].mean(),
            "num_parameters": grouped["num_parameters"].max(),
            "tasks": grouped["task"].nunique(),
            "kind": grouped["kind"].first(),
        }
    )


@dataclass
class Ranking:
    """A use case's ranking: ``table`` (ranked first, best first), per-task ``quality``, coverage, notes.

    ``notes`` concern the whole ranking; ``candidate_notes`` one candidate each (dropped documents,
    aggregates standing in for per-item records, ties inside a figure's noise). ``--json`` and
    the tables carry both.
    """

    use_case: UseCase
    table: pd.DataFrame
    message: str | None = None
    notes: list[str] = field(default_factory=list)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)  #: candidates x counted tasks (chance-corrected)
    coverage: Coverage | None = None
    method: str = METHOD
    candidate_notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def eligible(self) -> pd.DataFrame:
        return self.table[self.table["meets_limits"]]


@dataclass(frozen=True)
class _Quality:
    accuracy: pd.DataFrame  #: candidates x tasks, the metric's 0-1 scale (what wins are decided on)
    stderr: pd.DataFrame
    draws: list[TaskDraws]
    n_items: pd.Series
    chance: pd.Series  #: per task, the guessing accuracy (0: no correction)

    def corrected(self) -> pd.DataFrame:
        """Chance-corrected quality, one correction per task: ``(acc - c) / (1 - c)``."""
        c = self.chance.reindex(self.accuracy.columns).fillna(0.0)
        return (self.accuracy - c) / (1.0 - c)


def _quality(rows: pd.DataFrame, ev: Evidence, ranked: Sequence[str], tasks: Sequence[str], notes: dict[str, list[str]]) -> _Quality:
    """Accuracy per candidate x task on the paired documents (aggregates where no items), and draws."""
    scale = pd.Series(np.where(rows["metric"].isin(PERCENT_SCALE_METRICS), 100.0, 1.0), index=rows.index)
    acc = rows.pivot_table(index="candidate", columns="task", values="accuracy", aggfunc="first").reindex(index=list(ranked), columns=list(tasks))
    stderr = (rows["stderr"].astype(float) / scale).groupby([rows["candidate"], rows["task"]]).first().unstack().reindex(index=acc.index, columns=acc.columns)
    draws, n_items = [], pd.Series(0, index=acc.index)
    for t_index, task in enumerate(tasks):
        found = ev.tasks.get(task)
        cols = [c for c in ranked if found is not None and c in found.raw.columns]
        for cand in set(ranked) - set(cols):
            notes.setdefault(cand, []).append(f"{task}: no per-sample log; its aggregate is drawn from lm-eval's stderr")
        if found is None or not cols:
            continue
        for cand, n in found.dropped.items():
            if cand in cols:
                notes.setdefault(cand, []).append(f"{task}: {n} of its documents dropped (not answered by every ranked candidate)")
        divisor = 100.0 if found.metric in PERCENT_SCALE_METRICS else 1.0
        scores = found.raw[cols].to_numpy(dtype=float) / divisor
        acc.loc[cols, task] = scores.sum(axis=0) / len(scores)
        stderr.loc[cols, task] = np.nan
        n_items[cols] += len(scores)
        keep = np.array([list(found.raw.columns).index(c) for c in cols], dtype=int)
        gaps = found.ece_gaps[:, keep] if found.ece_gaps is not None else None
        draws.append(TaskDraws(t_index, np.array([acc.index.get_loc(c) for c in cols]), scores, gaps, found.clusters))
    chance = pd.Series({t: ev.tasks[t].chance for t in tasks if t in ev.tasks}, dtype=float)
    return _Quality(acc, stderr, draws, n_items, chance)


def rank_use_case(frame: pd.DataFrame, use_case: UseCase, items: pd.DataFrame | None = None, n_boot: int = N_BOOT) -> Ranking:
    """Score, rank and interval every candidate for ``use_case`` (see the module docstring).

    ``items`` is the per-item frame of ``store.samples.load_items``; without it (or for runs that
    kept no per-sample log) task scores are drawn from lm-eval's standard errors.
    """
    scoped = scope_frame(frame, use_case)
    best = main_metric_rows(scoped)
    if best.empty:
        scope = ", ".join(use_case.domains or use_case.tasks) or "any task"
        return Ranking(use_case, _empty_table(), f"No results cover {use_case.name} ({scope}): run candidates on those tasks first.")
    ece_tasks = sorted(set(scoped.loc[scoped["metric"] == "ece", "task"])) if use_case.weights.get("calibration", 0) > 0 else []
    counted, ev, coverage = gather(best, items, ece_tasks)
    cand_notes: dict[str, list[str]] = {}
    figures = candidate_figures(counted).reindex(list(coverage.ranked))
    for col in RESAMPLED:
        bounds = figure_intervals(counted, list(figures.index), col)
        figures[f"{col}_low"], figures[f"{col}_high"], figures[f"{col}_level"] = bounds.low, bounds.high, bounds.level
    ece_counted = [t for t in ece_tasks if t in coverage.tasks]
    aggregate = ece_by_candidate(scoped, ece_counted).reindex(figures.index)
    figures["ece"], _ = ece_figure(ev.tasks, ece_counted, aggregate, cand_notes)
    quality = _quality(counted, ev, coverage.ranked, coverage.tasks, cand_notes)
    weights, notes = _measured_weights(use_case, figures)
    table = _scored_table(use_case, figures, quality, weights, n_boot, cand_notes)
    table = pd.concat([table, _excluded_rows(best, coverage, ev)], ignore_index=True)
    table["excluded_reason"] = table["excluded_reason"].astype(object).where(table["excluded_reason"].notna(), None)
    table = table.sort_values(["meets_limits", "rank", "score", "candidate"], ascending=[False, True, False, True], kind="stable", na_position="last")
    notes += _ranking_notes(ev, coverage)
    message = None
    if figures.empty:  # every task left out or every candidate excluded: there was nothing to weigh
        message = f"No candidate can be ranked for {use_case.name}: no task it counts has enough documents in common (the notes say why)."
    elif not table["meets_limits"].any():
        limits = "; ".join(lim.describe() for lim in use_case.limits)
        message = f"No candidate meets every limit of {use_case.name} ({limits}). The table shows how close each came."
    return Ranking(use_case, table.reset_index(drop=True), message, notes, quality.corrected(), coverage, candidate_notes=cand_notes)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=["rank", "rank_low", "rank_high", "tied_with_leader", "candidate", "score", "meets_limits", "why", "excluded_reason"])


def _ranking_notes(ev: Evidence, coverage: Coverage) -> list[str]:
    notes = [f"{task} left out: {why}" for task, why in sorted(ev.tasks_left_out.items())]
    notes += list(ev.notes)
    if coverage.not_counted:
        notes.append(f"not counted (not run by every ranked candidate): {', '.join(coverage.not_counted)}")
    return notes


def _limit_checks(use_case: UseCase, figures: pd.DataFrame) -> pd.Series:
    checks = {lim.text: figures[FIGURES[lim.figure].column].map(lim.holds) for lim in use_case.limits}
    return pd.DataFrame(checks, index=figures.index).all(axis=1) if checks else pd.Series(True, index=figures.index)


def _scored_table(
    use_case: UseCase, figures: pd.DataFrame, quality: _Quality, weights: dict[str, float], n_boot: int, notes: dict[str, list[str]]
) -> pd.DataFrame:
    """Scores, ranks and tie marks of the candidates within every limit (win rates among them only);
    the others are listed with NaN scores and the limit they fail."""
    total = sum(weights.values())
    meets = _limit_checks(use_case, figures)
    ok = list(figures.index[meets.to_numpy(dtype=bool)])
    fixed, preference = fixed_parts(figures.loc[ok], weights, notes)
    w_q, w_ece = weights.get("accuracy", 0.0) / total, weights.get("calibration", 0.0) / total
    sub = _subset(quality, [figures.index.get_loc(c) for c in ok])
    accuracy, ece = sub.accuracy.to_numpy(dtype=float), figures.loc[ok, "ece"].to_numpy(dtype=float)
    parts = fixed.assign(accuracy=w_q * win_rate_scores(accuracy))
    if w_ece:
        parts["calibration"] = w_ece * figure_win_rates(ece, False)
    table = figures.copy()
    for column in ("score", "rank", "rank_low", "rank_high"):
        table[column] = np.nan
    table["tied_with_leader"] = False
    if ok:
        point = parts.sum(axis=1).to_numpy()
        joint = joint_ranks(preference + _drawn_preference(sub, ece if w_ece else None, w_q, w_ece, n_boot), point)
        table.loc[ok, "score"], table.loc[ok, "rank"], table.loc[ok, "rank_low"], table.loc[ok, "rank_high"] = point, joint.rank, joint.low, joint.high
        table.loc[ok, "tied_with_leader"] = tied_with_leader(joint, point)
    table["meets_limits"] = meets
    table["n_items"] = quality.n_items.reindex(figures.index).fillna(0).astype(int)
    table["task_list"] = [list(quality.accuracy.columns)] * len(table)
    table["why"] = [explain(use_case, weights, figures.loc[c], parts.loc[c] if c in parts.index else None, bool(meets[c])) for c in figures.index]
    table["excluded_reason"] = [None if meets[c] else table.loc[c, "why"].split("; ")[0] for c in figures.index]
    return table.rename_axis("candidate").reset_index()


def _drawn_preference(sub: _Quality, ece: np.ndarray | None, w_q: float, w_ece: float, n_boot: int) -> np.ndarray:
    """Weighted pairwise sure wins on the bootstrapped components: each task's accuracy (averaged
    over tasks, as the win rate is) and ECE, compared jointly (:func:`.rank_intervals.certain_beats`)."""
    accuracy = sub.accuracy.to_numpy(dtype=float)
    n_t = accuracy.shape[1]
    point = accuracy if ece is None else np.column_stack([accuracy, ece])
    reps = draw_components(accuracy, sub.stderr.to_numpy(dtype=float), sub.draws, n_boot, ece_point=ece)
    higher = np.array([True] * n_t + ([] if ece is None else [False]))
    sure, _ = certain_beats(point, reps, higher)
    out = w_q * sure[:, :, :n_t].mean(axis=2) if n_t else np.zeros(sure.shape[:2])
    return out + (w_ece * sure[:, :, n_t] if ece is not None else 0.0)


def _subset(quality: _Quality, rows: Sequence[int]) -> _Quality:
    """The quality of the candidates at ``rows`` (those within the limits), draws re-indexed."""
    where = {old: new for new, old in enumerate(rows)}
    draws = []
    for d in quality.draws:
        keep = [i for i, c in enumerate(d.candidate_index) if int(c) in where]
        if keep:
            gaps = d.ece_gaps[:, keep] if d.ece_gaps is not None else None
            draws.append(TaskDraws(d.task_index, np.array([where[int(d.candidate_index[i])] for i in keep]), d.scores[:, keep], gaps, d.clusters))
    return _Quality(quality.accuracy.iloc[list(rows)], quality.stderr.iloc[list(rows)], draws, quality.n_items.iloc[list(rows)], quality.chance)


def _excluded_rows(best: pd.DataFrame, coverage: Coverage, ev: Evidence) -> pd.DataFrame:
    rows = []
    for cand, reason in coverage.excluded.items():
        own = [why for (c, _), why in ev.left_out.items() if c == cand]
        reason = "; ".join(own) if own else reason
        ran = sorted(best.loc[best["candidate"] == cand, "task"])
        kind = best.loc[best["candidate"] == cand, "kind"]
        rows.append({"candidate": cand, "kind": kind.iloc[0] if len(kind) else None, "tasks": len(ran), "task_list": ran, "score": np.nan, "meets_limits": False,
                     "tied_with_leader": False, "n_items": 0, "why": f"not ranked: {reason}", "excluded_reason": reason})  # fmt: skip
    return pd.DataFrame(rows)


def _measured_weights(use_case: UseCase, figures: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """The weights of figures at least one candidate has; a figure nobody measured (energy on a
    machine without NVML or RAPL) would only shrink every score alike, so it is left out, said once."""
    if figures.empty:  # no candidate ranked: "measured for no candidate" would blame the figures
        return dict(use_case.weights), []
    weights = {k: w for k, w in use_case.weights.items() if w > 0 and figures[FIGURES[k].column].notna().any()}
    notes = [
        f"{FIGURES[k].label} was measured for no candidate here, so its weight ({w:g}) is left out"
        for k, w in use_case.weights.items()
        if w > 0 and k not in weights
    ]
    return (weights or dict(use_case.weights)), notes


def rank_results(results: ResultsSet, use_case: UseCase, n_boot: int = N_BOOT, frame: pd.DataFrame | None = None) -> Ranking:
    """:func:`rank_use_case` over a results folder, with the per-item records of its runs.

    ``frame`` narrows the board's rows (the app's sidebar filters); default: all of them.
    """
    rows = results.frame if frame is None else frame
    tasks = scope_frame(rows, use_case)["task"].unique().tolist()
    items, issues = load_items(results, candidates=rows["candidate"].unique().tolist(), tasks=tasks)
    ranking = rank_use_case(rows, use_case, items, n_boot)
    ranked = ranking.coverage.ranked if ranking.coverage else ()
    counted = ranking.coverage.tasks if ranking.coverage else ()
    without = missing_samples(results, ranked, counted)
    if without:
        ranking.notes.append(
            f"{len(without)} run(s) kept no per-sample log ({', '.join(f'{c}/{t}' for c, t in without[:4])}{', ...' if len(without) > 4 else ''}): "
            "their task scores are resampled from lm-eval's stderr; paired comparisons need --log_samples"
        )
    ranking.notes.extend(str(i) for i in issues)
    return ranking

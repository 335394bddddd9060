"""Use-case rankings with rank intervals, over the tidy results frame and its per-item records.

Everything here takes and returns pandas objects (reading no files except through the store), so
the Streamlit app, ``medmoe rank`` and the static export show the very same numbers.

How a use case scores a candidate (method :data:`METHOD`):

* quality per task = the task's own main metric, chance-corrected for multiple choice
  (:mod:`.quality`); only tasks every ranked candidate ran count (:mod:`.coverage`);
* every weighted figure becomes a HELM-style win rate among the ranked candidates: the share of
  the others it beats (ties count half; quality per task, averaged over tasks; a figure a candidate
  lacks ranks below every measured one). Win rates replace min-max scaling, which turned 0.219 vs
  0.225 into 0 vs 1;
* score = the weighted mean of those win rates; the rank comes with its 2.5-97.5% interval from
  bootstrapping the items per task (:mod:`.rank_intervals`), with single-stream latency's few
  measurements redrawn in the same draws (:mod:`.latency`; the table gets ``latency_ms_low`` /
  ``_high`` and ``ttft_ms_low`` / ``_high``), and a candidate whose interval overlaps the
  leader's is marked as tied with it, never as worse. Memory, energy and throughput are single
  measurements: their win rates are the same in every draw.

Hard limits (``"memory <= 8 GB"``) leave a candidate listed but unranked; ``accuracy`` limits hold
only when every counted task's main metric meets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.calibration import ece_by_candidate
from medmoe_lm_eval.analysis.coverage import Coverage, choose_coverage
from medmoe_lm_eval.analysis.latency import RESAMPLED, FigureDraws, figure_draws
from medmoe_lm_eval.analysis.quality import main_metric_rows, task_matrices
from medmoe_lm_eval.analysis.rank_intervals import N_BOOT, SEED, TaskDraws, figure_win_rates, rank_intervals, tied_with_leader, win_rate_scores
from medmoe_lm_eval.analysis.use_cases import FIGURES, UseCase
from medmoe_lm_eval.analysis.why import explain
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.samples import load_items, missing_samples

METHOD = "HELM mean win rate over per-task main metrics (chance-corrected for multiple choice)"

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
    best = best.reindex(columns=list(dict.fromkeys([*best.columns, "ttft_ms_p50", "batch_latency_ms_p50"])))  # frames from before these figures
    grouped = best.groupby("candidate", sort=True)
    return pd.DataFrame(
        {
            "accuracy": grouped["accuracy"].min(),
            "latency_ms": grouped["latency_ms_p50"].mean(),  # single-stream E2E p50 (profiling.figures)
            "ttft_ms": grouped["ttft_ms_p50"].mean(),
            "batch_latency_ms": grouped["batch_latency_ms_p50"].mean(),
            "peak_memory_bytes": grouped["peak_memory_bytes"].max(),
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
    """A use case's ranking: ``table`` (ranked first, best first), per-task ``quality``, coverage."""

    use_case: UseCase
    table: pd.DataFrame
    message: str | None = None
    notes: list[str] = field(default_factory=list)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)  #: candidates x counted tasks
    coverage: Coverage | None = None
    method: str = METHOD

    @property
    def eligible(self) -> pd.DataFrame:
        return self.table[self.table["meets_limits"]]


@dataclass(frozen=True)
class _Quality:
    point: pd.DataFrame  #: candidates x tasks
    stderr: pd.DataFrame
    draws: list[TaskDraws]
    n_items: pd.Series


def _quality(best: pd.DataFrame, items: pd.DataFrame | None, ranked: Sequence[str], tasks: Sequence[str]) -> _Quality:
    """Point quality per candidate x task (item means where items exist), spread, and item draws."""
    rows = best[best["candidate"].isin(ranked) & best["task"].isin(tasks)]
    point = rows.pivot_table(index="candidate", columns="task", values="quality", aggfunc="first").reindex(index=list(ranked), columns=list(tasks))
    stderr = rows.pivot_table(index="candidate", columns="task", values="quality_stderr", aggfunc="first", dropna=False)
    stderr = stderr.reindex(index=point.index, columns=point.columns)
    draws: list[TaskDraws] = []
    n_items = pd.Series(0, index=point.index)
    matrices = task_matrices(items, rows) if items is not None else {}
    for t_index, task in enumerate(tasks):
        matrix = matrices.get(task)
        if matrix is None:
            continue
        cols = [c for c in ranked if c in matrix.scores.columns]
        scores = matrix.scores[cols].to_numpy(dtype=float)
        point.loc[cols, task] = scores.mean(axis=0)
        stderr.loc[cols, task] = np.nan
        n_items[cols] += scores.shape[0]
        draws.append(TaskDraws(t_index, np.array([point.index.get_loc(c) for c in cols]), scores))
    return _Quality(point, stderr, draws, n_items)


def rank_use_case(frame: pd.DataFrame, use_case: UseCase, items: pd.DataFrame | None = None, n_boot: int = N_BOOT) -> Ranking:
    """Score, rank and interval every candidate for ``use_case`` (see the module docstring).

    ``items`` is the per-item frame of ``store.samples.load_items``; without it (or for runs that
    kept no per-sample log) task scores are resampled from lm-eval's standard errors.
    """
    best = main_metric_rows(scope_frame(frame, use_case))
    if best.empty:
        scope = ", ".join(use_case.domains or use_case.tasks) or "any task"
        empty = pd.DataFrame(columns=["rank", "rank_low", "rank_high", "tied_with_leader", "candidate", "score", "meets_limits", "why", "excluded_reason"])
        return Ranking(use_case, empty, f"No results cover {use_case.name} ({scope}): run candidates on those tasks first.")
    coverage = choose_coverage({str(c): set(g["task"]) for c, g in best.groupby("candidate")})
    counted = best[best["task"].isin(coverage.tasks)]
    figures = candidate_figures(counted).reindex(list(coverage.ranked))
    figures["ece"] = ece_by_candidate(scope_frame(frame, use_case), coverage.tasks).reindex(figures.index)
    rng = np.random.default_rng(SEED + 1)  # its own stream: the item draws stay as they were
    latency = {col: figure_draws(counted, list(figures.index), col, n_boot, rng) for col in RESAMPLED}
    for col, draws in latency.items():
        figures[f"{col}_low"], figures[f"{col}_high"] = draws.interval()
    quality = _quality(best, items, coverage.ranked, coverage.tasks)
    weights, notes = _measured_weights(use_case, figures)
    table = _scored_table(use_case, figures, quality, weights, n_boot, latency)
    table = pd.concat([table, _excluded_rows(best, coverage)], ignore_index=True)
    table["excluded_reason"] = table["excluded_reason"].astype(object).where(table["excluded_reason"].notna(), None)
    table = table.sort_values(["meets_limits", "score", "candidate"], ascending=[False, False, True], kind="stable", na_position="last").reset_index(drop=True)
    if coverage.not_counted:
        notes.append(f"not counted (not run by every ranked candidate): {', '.join(coverage.not_counted)}")
    message = None
    if not table["meets_limits"].any():
        limits = "; ".join(lim.describe() for lim in use_case.limits)
        message = f"No candidate meets every limit of {use_case.name} ({limits}). The table shows how close each came."
    return Ranking(use_case, table, message, notes, quality.point, coverage)


def _limit_checks(use_case: UseCase, figures: pd.DataFrame) -> pd.Series:
    checks = {lim.text: figures[FIGURES[lim.figure].column].map(lim.holds) for lim in use_case.limits}
    return pd.DataFrame(checks, index=figures.index).all(axis=1) if checks else pd.Series(True, index=figures.index)


def _scored_table(
    use_case: UseCase, figures: pd.DataFrame, quality: _Quality, weights: dict[str, float], n_boot: int, latency: Mapping[str, FigureDraws]
) -> pd.DataFrame:
    total = sum(weights.values())
    fixed = pd.DataFrame(index=figures.index)
    shift = np.zeros((n_boot, len(figures)))  # per draw, how far redrawn latency moves each score
    for key, weight in weights.items():
        if key == "accuracy":
            continue
        figure = FIGURES[key]
        fixed[key] = figure_win_rate(figures[figure.column], figure.higher_is_better) * (weight / total)
        if figure.column in latency:
            shift += figure_win_rates(latency[figure.column].replicates, figure.higher_is_better) * (weight / total) - fixed[key].to_numpy()
    w_quality = weights.get("accuracy", 0.0) / total
    meets = _limit_checks(use_case, figures)
    eligible = meets.to_numpy()
    fixed_sum = fixed.sum(axis=1).to_numpy()

    def score(q: np.ndarray) -> np.ndarray:
        return w_quality * win_rate_scores(q) + fixed_sum

    point_q = quality.point.to_numpy(dtype=float)
    table = figures.copy()
    table["score"] = score(point_q)
    parts = fixed.assign(accuracy=w_quality * win_rate_scores(point_q))
    for column in ("rank", "rank_low", "rank_high"):
        table[column] = np.nan
    table["tied_with_leader"] = False
    if eligible.any():
        _rank_eligible(table, quality, eligible, score, n_boot, shift)
    table["meets_limits"] = meets
    table["n_items"] = quality.n_items.reindex(figures.index).fillna(0).astype(int)
    table["task_list"] = [list(quality.point.columns)] * len(table)
    table["why"] = [explain(use_case, weights, figures.loc[c], parts.loc[c], bool(meets[c])) for c in figures.index]
    table["excluded_reason"] = [None if meets[c] else table.loc[c, "why"].split("; ")[0] for c in figures.index]
    return table.rename_axis("candidate").reset_index()


def _rank_eligible(
    table: pd.DataFrame, quality: _Quality, eligible: np.ndarray, score: Callable[[np.ndarray], np.ndarray], n_boot: int, shift: np.ndarray
) -> None:
    """Point ranks, rank intervals and tie marks of the candidates that meet every limit.

    Scores (win rates) are over every covered candidate, as shown in the table; only the eligible
    ones are ranked, in the point estimate and in every bootstrap draw.
    """
    point = quality.point.to_numpy(dtype=float)
    stderr = quality.stderr.to_numpy(dtype=float)
    r, lo, hi = rank_intervals(point, stderr, quality.draws, score, n_boot, among=eligible, shift=shift)
    idx = table.index[eligible]
    table.loc[idx, "rank"], table.loc[idx, "rank_low"], table.loc[idx, "rank_high"] = r, lo, hi
    table.loc[idx, "tied_with_leader"] = tied_with_leader(r, lo, hi)


def _excluded_rows(best: pd.DataFrame, coverage: Coverage) -> pd.DataFrame:
    rows = []
    for cand, reason in coverage.excluded.items():
        ran = sorted(best.loc[best["candidate"] == cand, "task"])
        kind = best.loc[best["candidate"] == cand, "kind"]
        rows.append({"candidate": cand, "kind": kind.iloc[0] if len(kind) else None, "tasks": len(ran), "task_list": ran, "score": np.nan, "meets_limits": False,
                     "tied_with_leader": False, "n_items": 0, "why": f"not ranked: {reason}", "excluded_reason": reason})  # fmt: skip
    return pd.DataFrame(rows)


def _measured_weights(use_case: UseCase, figures: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """The weights of figures at least one candidate has; a figure nobody measured (energy on a
    machine without NVML or RAPL) would only shrink every score alike, so it is left out, said once."""
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

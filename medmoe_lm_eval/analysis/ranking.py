"""Ranking over the tidy results frame: one metric->direction table, win rates, use cases, Pareto.

Everything here takes and returns pandas objects and never reads files except the use-case YAML,
so the Streamlit app, ``medmoe rank`` and the static export show the very same numbers.

* :data:`METRIC_DIRECTIONS` is the only place that says whether a figure is better high or low
  (lm-eval's own ``higher_is_better`` fills in metrics it does not list).
* :func:`win_rates` is HELM's aggregate: per column, the share of other candidates beaten (ties
  count half); columns without a direction or with fewer than two values are skipped.
* A use case (``leaderboard/use_cases.yaml``) is data: weights over min-max normalised figures
  plus hard limits such as ``"memory <= 8 GB"``. Users add one by editing the YAML.
* :func:`pareto_front` marks the candidates that no other candidate beats on every axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.use_cases import FIGURES, UseCase, format_value
from medmoe_lm_eval.benchmarks.metric_directions import ACCURACY_METRICS, PERCENT_SCALE_METRICS

# ---------------------------------------------------------------------------------------------
# The one metric -> direction table (True: higher is better).


def main_metric_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate x task: its main accuracy metric (filter ``none`` preferred).

    Group rows are dropped so an aggregate never counts twice. ``accuracy`` holds the value on a
    0-1 scale.
    """
    if frame.empty:
        return frame.assign(accuracy=pd.Series(dtype=float))
    rows = frame[~frame["is_group"].astype(bool)] if "is_group" in frame else frame
    rank = {m: i for i, m in enumerate(ACCURACY_METRICS)}
    rows = rows[rows["metric"].isin(rank)].copy()
    rows["_metric_rank"] = rows["metric"].map(rank)
    rows["_filter_rank"] = (rows["filter"] != "none").astype(int)
    rows = rows.sort_values(["candidate", "task", "_metric_rank", "_filter_rank", "filter"])
    best = rows.drop_duplicates(["candidate", "task"], keep="first")
    scale = np.where(best["metric"].isin(PERCENT_SCALE_METRICS), 100.0, 1.0)
    best = best.assign(accuracy=best["value"].astype(float) / scale)
    return best.drop(columns=["_metric_rank", "_filter_rank"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# HELM-style win rates


def win_rates(table: pd.DataFrame, directions: Mapping[str, bool | None]) -> pd.Series:
    """Mean win rate per row of ``table`` (rows: candidates, columns: figures).

    For each column with a known direction and at least two values, a candidate scores the share
    of the *other* candidates with a value that it beats, a tie counting half. A candidate's
    result is the mean over the columns where it has a value (NaN if none).
    """
    scores: dict[str, pd.Series] = {}
    for column in table.columns:
        higher = directions.get(column)
        values = pd.to_numeric(table[column], errors="coerce").dropna()
        if higher is None or len(values) < 2:
            continue
        signed = values if higher else -values
        beats = signed.rank(method="average") - 1.0  # wins + half the ties, per candidate
        scores[column] = beats / (len(values) - 1)
    if not scores:
        return pd.Series(np.nan, index=table.index, name="win_rate")
    return pd.DataFrame(scores).reindex(table.index).mean(axis=1).rename("win_rate")


def task_win_rates(frame: pd.DataFrame) -> pd.Series:
    """Mean win rate of each candidate over the tasks' main metrics (all higher-is-better)."""
    best = main_metric_rows(frame)
    if best.empty:
        return pd.Series(dtype=float, name="win_rate")
    wide = best.pivot_table(index="candidate", columns="task", values="accuracy", aggfunc="first")
    return win_rates(wide, {task: True for task in wide.columns})


# ---------------------------------------------------------------------------------------------
# Pareto front


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


# ---------------------------------------------------------------------------------------------
# Use cases: figures, limits, weights


def scope_frame(frame: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """The rows a use case looks at: its domains and tasks (all when it names none)."""
    rows = frame
    if use_case.domains:
        rows = rows[rows["domain"].isin(use_case.domains)]
    if use_case.tasks:
        rows = rows[rows["task"].isin(use_case.tasks)]
    return rows


def candidate_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: the figures use cases weigh, from its main-metric rows.

    accuracy, latency, energy, throughput: mean over tasks; memory: the highest peak; plus
    ``tasks`` (how many tasks the candidate ran) and its ``kind``.
    """
    best = main_metric_rows(frame)
    columns = [
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
    if best.empty:
        return pd.DataFrame(columns=columns).rename_axis("candidate")
    best = best.reindex(columns=list(dict.fromkeys([*best.columns, "ttft_ms_p50", "batch_latency_ms_p50"])))  # frames from before these figures
    grouped = best.groupby("candidate", sort=True)
    return pd.DataFrame(
        {
            "accuracy": grouped["accuracy"].mean(),
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


def normalise(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Min-max to [0, 1] with 1 = best. All equal -> 1 for all; missing -> NaN; infinities sit
    at the matching end (infinite joules per correct answer, i.e. none correct, is the worst)."""
    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    finite = numeric[np.isfinite(numeric)]
    out = pd.Series(np.nan, index=numeric.index, dtype=float)
    if not finite.empty:
        lo, hi = float(finite.min()), float(finite.max())
        span = (finite - lo) / (hi - lo) if hi > lo else pd.Series(1.0, index=finite.index)
        out[finite.index] = span if higher_is_better or hi == lo else 1.0 - span
    infinite = numeric[np.isinf(numeric)]
    out[infinite.index] = ((infinite > 0) == higher_is_better).astype(float)
    return out


@dataclass
class Ranking:
    """A use case's ranking: ``table`` (eligible first), and a plain message when none qualifies."""

    use_case: UseCase
    table: pd.DataFrame
    message: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> pd.DataFrame:
        return self.table[self.table["meets_limits"]]


def rank_use_case(frame: pd.DataFrame, use_case: UseCase) -> Ranking:
    """Score every candidate for ``use_case`` and rank those that meet all hard limits.

    score = sum(w_f * n_f) / sum(w_f) with n_f the min-max normalised figure (best 1, worst 0; a
    figure the candidate lacks counts 0). Equal scores share a rank. Candidates failing a limit
    stay in the table, unranked, with the failed limit in ``why``.
    """
    figures = candidate_figures(scope_frame(frame, use_case))
    if figures.empty:
        scope = ", ".join(use_case.domains or use_case.tasks) or "any task"
        empty = pd.DataFrame(columns=["rank", "candidate", "score", "meets_limits", "why"])
        return Ranking(use_case, empty, f"No results cover {use_case.name} ({scope}): run candidates on those tasks first.")
    weights, notes = _measured_weights(use_case, figures)
    total = sum(weights.values())
    parts = pd.DataFrame(index=figures.index)
    for key, weight in weights.items():
        fig = FIGURES[key]
        parts[key] = normalise(figures[fig.column], fig.higher_is_better).fillna(0.0) * (weight / total)
    table = figures.copy()
    table["score"] = parts.sum(axis=1)
    checks = {lim.text: figures[FIGURES[lim.figure].column].map(lim.holds) for lim in use_case.limits}
    table["meets_limits"] = pd.DataFrame(checks, index=figures.index).all(axis=1) if checks else True
    table["why"] = [_why(use_case, weights, figures.loc[c], parts.loc[c], bool(table.loc[c, "meets_limits"])) for c in figures.index]
    table["rank"] = table["score"].where(table["meets_limits"]).rank(method="min", ascending=False)
    table = table.reset_index().sort_values(["meets_limits", "score", "candidate"], ascending=[False, False, True], kind="stable")
    table = table[["rank", "candidate", "score", "meets_limits", "why", *[c for c in figures.columns]]].reset_index(drop=True)
    message = None
    if not table["meets_limits"].any():
        limits = "; ".join(lim.describe() for lim in use_case.limits)
        message = f"No candidate meets every limit of {use_case.name} ({limits}). The table shows how close each came."
    return Ranking(use_case, table, message, notes)


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


def _why(use_case: UseCase, weights: Mapping[str, float], figures: pd.Series, parts: pd.Series, meets: bool) -> str:
    """One short sentence: limits met or failed, then the figure that carried the score."""
    phrases: list[str] = []
    failed = [lim for lim in use_case.limits if not lim.holds(figures[FIGURES[lim.figure].column])]
    shown = failed if not meets else list(use_case.limits)
    for lim in shown:
        fig = FIGURES[lim.figure]
        measured = figures[fig.column]
        status = "not measured" if pd.isna(measured) else format_value(fig, float(measured))
        phrases.append(f"{lim.describe()} ({status})")
    head = ("fails " if not meets else "meets ") + ", ".join(phrases) if phrases else "no hard limits"
    missing = [FIGURES[k].label for k in weights if pd.isna(figures[FIGURES[k].column])]
    if parts.sum() > 0:
        top = str(parts.idxmax())
        tail = f"carried by {FIGURES[top].label} ({parts[top]:.2f} of {parts.sum():.2f})"
    else:
        tail = "no weighted figure above the worst"
    if missing:
        tail += f"; no {', '.join(missing)} measured (counted as worst)"
    return f"{head}; {tail}"

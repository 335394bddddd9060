"""Tables the board, the terminal and the export draw, built from the store's frame.

Every form of the board calls these, so the numbers a user sees in Streamlit, in ``medmoe rank``
and in an exported page are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.ranking import Ranking, candidate_figures, task_win_rates
from medmoe_lm_eval.analysis.use_cases import FIGURES, format_value
from medmoe_lm_eval.benchmarks.metric_directions import ACCURACY_METRICS, METRIC_DIRECTIONS
from medmoe_lm_eval.store.files import as_dict
from medmoe_lm_eval.store.records import ResultsSet


@dataclass(frozen=True)
class Filters:
    """Sidebar choices; an empty tuple means "all"."""

    domain: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    backend: tuple[str, ...] = ()
    quantization: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        for column in ("domain", "task", "backend", "quantization", "kind"):
            chosen = getattr(self, column)
            if chosen:
                mask &= frame[column].fillna("unknown").isin(chosen)
        return frame[mask]


def filter_options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter can take, sorted, ``unknown`` for missing."""
    return {c: sorted(frame[c].fillna("unknown").astype(str).unique()) for c in ("domain", "task", "backend", "quantization", "kind")}


def overview_table(frame: pd.DataFrame, all_metrics: bool = False) -> pd.DataFrame:
    """Rows for the overview: accuracy-type metrics (or all) with efficiency and provenance."""
    rows = frame if all_metrics else frame[frame["metric"].isin(ACCURACY_METRICS)]
    cols = [
        "candidate", "kind", "domain", "task", "metric", "filter", "value", "stderr", "latency_ms_p50",
        "generated_tokens_per_s", "requests_per_s", "peak_memory_bytes", "energy_j", "energy_per_correct_j",
        "backend", "quantization", "n_samples", "date", "run_id",
    ]  # fmt: skip
    table = rows[cols].sort_values(["task", "metric", "value"], ascending=[True, True, False]).reset_index(drop=True)
    return table.assign(peak_memory_gb=table["peak_memory_bytes"] / 1e9).drop(columns=["peak_memory_bytes"])


def candidate_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: kind, tasks, mean main-metric accuracy and HELM mean win rate."""
    figures = candidate_figures(frame)
    if figures.empty:
        return figures.reset_index()
    figures["win_rate"] = task_win_rates(frame).reindex(figures.index)
    figures["peak_memory_gb"] = figures["peak_memory_bytes"] / 1e9
    cols = ["kind", "tasks", "win_rate", "accuracy", "latency_ms", "generated_tokens_per_s", "peak_memory_gb", "energy_per_correct_j"]
    return figures[cols].reset_index().sort_values(["win_rate", "accuracy"], ascending=False, na_position="last").reset_index(drop=True)


def compare_candidates(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Side by side per task x metric (and efficiency): values of ``a`` and ``b``, delta b - a."""
    keys = ["task", "metric", "filter"]
    left = frame[frame["candidate"] == a].set_index(keys)
    right = frame[frame["candidate"] == b].set_index(keys)
    both = left[["value"]].join(right[["value"]], how="outer", lsuffix="_a", rsuffix="_b")
    both["higher_is_better"] = left["higher_is_better"].combine_first(right["higher_is_better"]).reindex(both.index)
    efficiency = _efficiency_rows(left, right)
    table = pd.concat([both.reset_index(), efficiency], ignore_index=True)
    table["delta"] = table["value_b"] - table["value_a"]
    sign = table["higher_is_better"].map({True: 1.0, False: -1.0})
    better = np.sign(table["delta"] * sign)
    table["better"] = better.map({1.0: b, -1.0: a, 0.0: "tie"}).fillna("")
    return table.rename(columns={"value_a": a if a != b else f"{a} (A)", "value_b": b if a != b else f"{b} (B)"})


def _efficiency_rows(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Per task: latency, tokens/s, peak memory, energy per correct of both candidates."""
    out = []
    for column in ("latency_ms_p50", "generated_tokens_per_s", "peak_memory_bytes", "energy_per_correct_j"):
        a = left.groupby(level="task")[column].first()
        b = right.groupby(level="task")[column].first()
        joined = pd.concat({"value_a": a, "value_b": b}, axis=1).dropna(how="all")
        for task, row in joined.iterrows():
            out.append(
                {
                    "task": task,
                    "metric": column,
                    "filter": "",
                    "value_a": row["value_a"],
                    "value_b": row["value_b"],
                    "higher_is_better": METRIC_DIRECTIONS[column],
                }
            )
    return pd.DataFrame(out, columns=["task", "metric", "filter", "value_a", "value_b", "higher_is_better"])


def run_details(results: ResultsSet, candidate: str) -> list[dict[str, Any]]:
    """Config and profile of a candidate's latest runs, for the detail view (plain data)."""
    out = []
    for info in results.latest_runs(candidate):
        out.append({
            "run_id": info.run_id, "date": str(info.date), "model_type": info.model_type,
            "lm_eval_version": info.lm_eval_version, "git_hash": info.git_hash, "hardware": info.hardware,
            "model_args": info.model_args, "adapter": as_dict(info.medmoe).get("adapter"),
            "experts": as_dict(info.medmoe).get("experts"), "profile": info.profile,
        })  # fmt: skip
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def ranking_display(ranking: Ranking) -> pd.DataFrame:
    """A ranking with readable figures: rank, candidate, kind, score, the weighted figures, why."""
    table = ranking.table
    if table.empty:
        return pd.DataFrame(columns=["rank", "candidate", "kind", "score", "why"])
    shown = ["accuracy", *[k for k in ranking.use_case.weights if k != "accuracy"]]
    shown += [lim.figure for lim in ranking.use_case.limits if lim.figure not in shown]
    out = pd.DataFrame(
        {
            "rank": table["rank"].map(lambda r: "—" if pd.isna(r) else str(int(r))),
            "candidate": table["candidate"],
            "kind": table["kind"],
            "score": table["score"].round(3),
        }
    )
    for key in shown:
        fig = FIGURES[key]
        out[fig.label] = table[fig.column].map(lambda v, f=fig: format_value(f, None if pd.isna(v) else float(v)))
    out["tasks"] = table["tasks"]
    out["why"] = table["why"]
    return out


def summary_display(results_frame: pd.DataFrame) -> pd.DataFrame:
    """The per-candidate summary (win rate, mean accuracy, efficiency), rounded for reading."""
    summary = candidate_summary(results_frame)
    if summary.empty:
        return summary
    return summary.round({"win_rate": 3, "accuracy": 3, "latency_ms": 1, "generated_tokens_per_s": 1, "peak_memory_gb": 2, "energy_per_correct_j": 3})

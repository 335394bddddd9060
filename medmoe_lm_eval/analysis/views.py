"""Tables the board, the terminal and the export draw, built from the store's frame.

Every form of the board calls these, so the numbers a user sees in Streamlit, in ``medmoe rank``
and in an exported page are the same numbers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.latency import difference_interval
from medmoe_lm_eval.analysis.precision import fixed, interval_decimals, significant, with_interval
from medmoe_lm_eval.analysis.rank_intervals import SEED
from medmoe_lm_eval.analysis.ranking import Ranking, candidate_figures, task_win_rates
from medmoe_lm_eval.analysis.use_cases import FIGURES, Figure, format_value
from medmoe_lm_eval.benchmarks.metric_directions import ACCURACY_METRICS, METRIC_DIRECTIONS
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.run_key import SOURCE_BADGE
from medmoe_lm_eval.store.values import as_dict


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


def source_badge(kind: Any) -> str:
    """The data-source badge of a row: ``hub``, ``bundled sample``, ``synthetic``, ``local directory``."""
    return SOURCE_BADGE.get(str(kind), SOURCE_BADGE["unknown"]) if isinstance(kind, str) else SOURCE_BADGE["unknown"]


def sandbox_badge(mechanism: Any) -> str:
    """``sandbox: namespaces`` / ``sandbox: rlimits+audit`` for code tasks; empty elsewhere."""
    return f"sandbox: {mechanism}" if isinstance(mechanism, str) and mechanism else ""


def overview_table(frame: pd.DataFrame, all_metrics: bool = False) -> pd.DataFrame:
    """Rows for the overview: accuracy-type metrics (or all) with efficiency, data source and provenance."""
    rows = frame if all_metrics else frame[frame["metric"].isin(ACCURACY_METRICS)]
    cols = [
        "candidate", "kind", "domain", "task", "metric", "filter", "value", "stderr", "latency_ms_p50",
        "generated_tokens_per_s", "requests_per_s", "peak_memory_bytes", "energy_j", "energy_per_correct_j",
        "backend", "quantization", "n_samples", "data_source", "sandbox", "samples_file", "date", "run_id",
    ]  # fmt: skip
    table = rows[cols].sort_values(["task", "metric", "value"], ascending=[True, True, False]).reset_index(drop=True)
    table = table.assign(
        peak_memory_gb=table["peak_memory_bytes"] / 1e9, data=table["data_source"].map(source_badge), sandbox=table["sandbox"].map(sandbox_badge),
        per_item=table["samples_file"].notna().map({True: "yes", False: "no (--log_samples)"}),
    )  # fmt: skip
    return table.drop(columns=["peak_memory_bytes", "data_source", "samples_file"])


def apart_table(results: ResultsSet) -> pd.DataFrame:
    """Runs under another comparability key than the one on the board, with the reason."""
    apart = results.apart
    if apart.empty:
        return pd.DataFrame(columns=["candidate", "task", "why apart", "data", "n_samples", "date", "run_id"])
    rows = apart[apart["metric"].isin(ACCURACY_METRICS)].drop_duplicates(["candidate", "task", "run_id"])
    return pd.DataFrame(
        {"candidate": rows["candidate"], "task": rows["task"], "why apart": rows["variant"], "data": rows["data_source"].map(source_badge),
         "n_samples": rows["n_samples"], "date": rows["date"].astype(str), "run_id": rows["run_id"]}
    ).reset_index(drop=True)  # fmt: skip


def candidate_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: kind, tasks, HELM mean win rate over tasks, lowest task score, efficiency.

    The win rate compares candidates only on tasks they share (per task, among those that ran it);
    the use-case rankings add rank intervals and restrict to tasks every ranked candidate ran.
    """
    figures = candidate_figures(frame)
    if figures.empty:
        return figures.reset_index()
    figures["win_rate"] = task_win_rates(frame).reindex(figures.index)
    figures["peak_memory_gb"] = figures["peak_memory_bytes"] / 1e9
    badges = frame.groupby("candidate")["data_source"].agg(lambda s: ", ".join(sorted({source_badge(v) for v in s})))
    figures["data"] = badges.reindex(figures.index)
    figures = figures.rename(columns={"accuracy": "lowest_task_score"})
    cols = ["kind", "tasks", "win_rate", "lowest_task_score", "latency_ms", "generated_tokens_per_s", "peak_memory_gb", "energy_per_correct_j", "data"]
    return figures[cols].reset_index().sort_values(["win_rate", "lowest_task_score"], ascending=False, na_position="last").reset_index(drop=True)


def compare_candidates(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Side by side per task x metric (and efficiency): values of ``a`` and ``b``, delta b - a."""
    keys = ["task", "metric", "filter"]
    left = frame[frame["candidate"] == a].set_index(keys)
    right = frame[frame["candidate"] == b].set_index(keys)
    both = left[["value"]].join(right[["value"]], how="outer", lsuffix="_a", rsuffix="_b")
    both["higher_is_better"] = left["higher_is_better"].combine_first(right["higher_is_better"]).reindex(both.index)
    efficiency = _efficiency_rows(left, right)
    table = pd.concat([both.reset_index(), efficiency], ignore_index=True)
    table["delta"] = pd.to_numeric(table["value_b"], errors="coerce") - pd.to_numeric(table["value_a"], errors="coerce")  # unprofiled runs: None
    sign = table["higher_is_better"].map({True: 1.0, False: -1.0}).astype(float)
    better = np.sign(table["delta"] * sign)
    table["better"] = better.map({1.0: b, -1.0: a, 0.0: "tie"}).fillna("")
    inside = (table["ci_low"] <= 0) & (table["ci_high"] >= 0)  # latency: an interval that holds 0 names no winner
    table.loc[inside, "better"] = "no significant difference"
    return table.rename(columns={"value_a": a if a != b else f"{a} (A)", "value_b": b if a != b else f"{b} (B)"})


def _efficiency_rows(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Per task: latency (with the 95% interval of B - A from the probe's measurements), tokens/s,
    peak memory and energy per correct of both candidates (single measurements: no interval)."""
    out = []
    samples = {
        side: frame.reindex(columns=["latency_samples_ms"]).groupby(level="task")["latency_samples_ms"].first() for side, frame in (("a", left), ("b", right))
    }
    for column in ("latency_ms_p50", "generated_tokens_per_s", "peak_memory_bytes", "energy_per_correct_j"):
        a = left.groupby(level="task")[column].first()
        b = right.groupby(level="task")[column].first()
        joined = pd.concat({"value_a": a, "value_b": b}, axis=1).dropna(how="all")
        for task, row in joined.iterrows():
            low, high = difference_interval(samples["a"].get(task), samples["b"].get(task), SEED) if column == "latency_ms_p50" else (np.nan, np.nan)
            out.append({"task": task, "metric": column, "filter": "", "value_a": row["value_a"], "value_b": row["value_b"],
                        "higher_is_better": METRIC_DIRECTIONS[column], "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(out, columns=["task", "metric", "filter", "value_a", "value_b", "higher_is_better", "ci_low", "ci_high"])


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


def rank_range(low: Any, high: Any) -> str:
    """``"1"`` or ``"1–3"``: the joint 95% rank set; ``"—"`` when unranked."""
    if pd.isna(low) or pd.isna(high):
        return "—"
    return str(int(low)) if int(low) == int(high) else f"{int(low)}–{int(high)}"


def ranking_display(ranking: Ranking, max_task_columns: int | None = None) -> pd.DataFrame:
    """A ranking with readable figures: rank, its interval, tie mark, candidate, score, figures, why.

    One quality column per counted task, unless there are more than ``max_task_columns`` (a terminal).
    """
    table = ranking.table
    if table.empty:
        return pd.DataFrame(columns=["rank", "rank range", "tied", "candidate", "kind", "score", "why"])
    shown = [k for k in ranking.use_case.weights if k != "accuracy"]
    shown += [lim.figure for lim in ranking.use_case.limits if lim.figure not in shown and lim.figure != "accuracy"]
    if "energy" in shown and "energy_per_correct" not in shown:  # J per correct answer: shown, not weighed
        shown.insert(shown.index("energy") + 1, "energy_per_correct")
    out = pd.DataFrame(
        {
            "rank": table["rank"].map(lambda r: "—" if pd.isna(r) else str(int(r))),
            "rank range": [rank_range(lo, hi) for lo, hi in zip(table["rank_low"], table["rank_high"], strict=True)],
            "tied": table["tied_with_leader"].map(lambda t: "= leader" if bool(t) else ""),
            "candidate": table["candidate"],
            "kind": table["kind"],
            "score": table["score"].round(3),
        }
    )
    per_task = max_task_columns is None or len(ranking.quality.columns) <= max_task_columns
    for task in ranking.quality.columns if per_task else ():
        out[f"{task} (quality)"] = table["candidate"].map(ranking.quality[task]).map(lambda v: "—" if pd.isna(v) else f"{v:.3f}")
    for key in shown:
        fig = FIGURES[key]
        out[fig.label] = [figure_cell(fig, row) for row in table.to_dict("records")]
    out["tasks"] = table["tasks"]
    out["items"] = table["n_items"]
    out["why"] = table["why"]
    out["notes"] = table["candidate"].map(lambda c: "; ".join(ranking.candidate_notes.get(c, [])))
    return out


def lead_why(ranking: Ranking) -> list[str]:
    """The 'why' of each ranking row as the board's first screen shows it (same order as
    :func:`ranking_display`): a candidate outside a hard limit keeps the limit it fails and
    "not scored", without the scoring notes that only concern scored rows (its full sentence stays
    in ``medmoe rank`` and the page's every-figure view)."""
    out = []
    for row in ranking.table.to_dict("records"):
        why = str(row["why"])
        failed = not row.get("meets_limits", True) and why.startswith("fails ") and isinstance(row.get("excluded_reason"), str)
        out.append(f"{row['excluded_reason']}; not scored" if failed else why)
    return out


def _value(row: Mapping[Hashable, Any], column: str) -> float | None:
    value = row.get(column)
    return None if value is None or pd.isna(value) else float(value)


def _interval(row: Mapping[Hashable, Any], column: str) -> dict[str, float | None]:
    """A single-stream figure with its order-statistic interval and that interval's level (>= 0.95
    from 6 measurements on), as ``medmoe rank --json`` prints it."""
    return {
        "p50": _value(row, column),
        "ci_low": _value(row, f"{column}_low"),
        "ci_high": _value(row, f"{column}_high"),
        "level": _value(row, f"{column}_level"),
    }


def figure_cell(fig: Figure, row: Mapping[Hashable, Any]) -> str:
    """A figure in readable units, with its 95% interval where the ranking has one (latency)."""
    shown = format_value(fig, _value(row, fig.column))
    low, high = _value(row, f"{fig.column}_low"), _value(row, f"{fig.column}_high")
    if low is None or high is None:
        return shown
    bounds = [format_value(fig, v) for v in (low, high)]
    units = {b.rpartition(" ")[2] for b in [shown, *bounds]}
    if len(units) == 1:  # "12.3 ms [11.0–14.1]": the unit once
        bounds = [b.rpartition(" ")[0] for b in bounds]
    level = _value(row, f"{fig.column}_level")
    label = "" if level is None or level >= 0.95 else f" ({level:.1%} interval)"  # fewer than 6 measurements: its true level
    return f"{shown} [{bounds[0]}–{bounds[1]}]{label}"


def ranking_json(ranking: Ranking) -> dict[str, Any]:
    """``medmoe rank --json``: the use case, the ranking's notes, and one object per candidate, best
    first (ranked, then the rest), each with its own notes: every note the text table shows."""
    out = []
    for row in ranking.table.to_dict("records"):
        ranked = not pd.isna(row["rank"])
        name = row["candidate"]
        quality = ranking.quality.loc[name] if name in ranking.quality.index else pd.Series(dtype=float)
        out.append({
            "candidate": name, "rank": int(row["rank"]) if ranked else None,
            "rank_low": int(row["rank_low"]) if ranked else None, "rank_high": int(row["rank_high"]) if ranked else None,
            "score": None if pd.isna(row["score"]) else round(float(row["score"]), 6), "tied_with_leader": bool(row["tied_with_leader"]),
            "tasks": list(row["task_list"]), "n_items": int(row["n_items"]), "excluded_reason": None if ranked else row["excluded_reason"],
            "meets_limits": bool(row["meets_limits"]), "why": row["why"],
            "quality": {str(t): round(float(v), 6) for t, v in quality.items() if pd.notna(v)},
            "latency_ms": _interval(row, "latency_ms"), "ttft_ms": _interval(row, "ttft_ms"),
            "notes": list(ranking.candidate_notes.get(name, [])),
        })  # fmt: skip
    case = ranking.use_case
    return {"use_case": case.slug, "name": case.name, "method": ranking.method, "message": ranking.message, "notes": list(ranking.notes), "candidates": out}


def summary_display(results_frame: pd.DataFrame) -> pd.DataFrame:
    """The per-candidate summary (win rate, lowest task score, efficiency), rounded for reading."""
    summary = candidate_summary(results_frame)
    if summary.empty:
        return summary
    return summary.round({"win_rate": 3, "lowest_task_score": 3, "latency_ms": 1, "generated_tokens_per_s": 1, "peak_memory_gb": 2, "energy_per_correct_j": 3})


# ---------------------------------------------------------------------------------------------
# Display tables: the figures a reader reads first, as text at the precision their interval
# supports (``analysis.precision``); every raw column stays in the frames the pages fold away.

#: efficiency metrics of :func:`compare_candidates` -> the figure that formats them (units)
EFFICIENCY_FIGURES = {
    "latency_ms_p50": "latency",
    "generated_tokens_per_s": "throughput",
    "peak_memory_bytes": "memory",
    "energy_per_correct_j": "energy_per_correct",
}
DIFFERENCE = "B - A [95% interval]"


def p_text(p: Any) -> str:
    """A p-value to two significant digits, '< 0.001' below that, '—' without a test."""
    value = _value({"p": p}, "p")
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """``Comparison.table()`` as the Compare page leads with it: per task A, B and B - A with its
    interval at the interval's precision, Holm's p, the paired count, the verdict and the MDE
    (test names, raw p, clusters and the rest stay in the detail table)."""
    rows = []
    for row in table.to_dict("records"):
        places = interval_decimals(row["ci_low"], row["ci_high"])
        rows.append({
            "task": row["task"], "metric": row["metric"], "A": fixed(row["a"], places), "B": fixed(row["b"], places),
            DIFFERENCE: with_interval(row["delta"], row["ci_low"], row["ci_high"], signed=True), "p (Holm)": p_text(row["p_holm"]),
            "paired": row["n_paired"], "verdict": row["verdict"], "MDE": fixed(row["mde"], places), "note": row.get("note") or "",
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=["task", "metric", "A", "B", DIFFERENCE, "p (Holm)", "paired", "verdict", "MDE", "note"])
    return out if (out["note"] != "").any() else out.drop(columns=["note"])


def efficiency_display(table: pd.DataFrame) -> pd.DataFrame:
    """Efficiency rows of :func:`compare_candidates` in their units: latency with the 95% interval of
    B - A at its precision, the single measurements (tokens/s, memory, energy) to three digits."""
    rows = []
    for row in table.to_dict("records"):
        fig = FIGURES[EFFICIENCY_FIGURES[row["metric"]]]
        a, b, low, high = (_value(row, c) for c in ("value_a", "value_b", "ci_low", "ci_high"))
        diff = None if a is None or b is None else b - a
        if low is not None and high is not None:
            shown = with_interval(diff, low, high, signed=True, unit=fig.base_unit)
        else:
            shown = "—" if diff is None else ("+" if diff > 0 else "") + format_value(fig, diff)
        rows.append({"task": row["task"], "figure": fig.label, "A": format_value(fig, a), "B": format_value(fig, b), DIFFERENCE: shown})
    return pd.DataFrame(rows, columns=["task", "figure", "A", "B", DIFFERENCE])


def subjects_display(table: pd.DataFrame) -> pd.DataFrame:
    """``subject_breakdown`` as text: A with its interval, B, and B - A with its interval, each at
    the precision its own interval supports."""
    rows = []
    for row in table.to_dict("records"):
        places = interval_decimals(row["ci_low"], row["ci_high"])
        rows.append({
            "task": row["task"], "subject": row["subject"], "n": row["n"], "A [95% interval]": with_interval(row["a"], row["a_low"], row["a_high"]),
            "B": fixed(row["b"], places), DIFFERENCE: with_interval(row["delta"], row["ci_low"], row["ci_high"], signed=True),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "subject", "n", "A [95% interval]", "B", DIFFERENCE])


def fidelity_display(table: pd.DataFrame) -> pd.DataFrame:
    """``fidelity_table`` as the Fidelity page leads with it: copy, parent, task, the verdict, copy -
    parent with its interval at its precision, the flips both ways as counts and the mean KL; recovery,
    same top, rates, the perplexity ratio and the rest stay in the detail table."""

    def count(v: Any) -> str:
        return "—" if v is None or pd.isna(v) else str(int(v))

    rows = []
    for row in table.to_dict("records"):
        rows.append({
            "copy": row["candidate"], "parent": row["parent"], "task": row["task"], "verdict": row["verdict_text"],
            "copy - parent [95%]": with_interval(row["delta"], row["delta_low"], row["delta_high"], signed=True),
            "flips c→w / w→c": f"{count(row['flips_correct_to_wrong'])} / {count(row['flips_wrong_to_correct'])}",
            "KL mean": significant(row["kl_mean"], 2),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["copy", "parent", "task", "verdict", "copy - parent [95%]", "flips c→w / w→c", "KL mean"])


REGRET_COLUMN = "regret (oracle - router) [95%]"


def scorecard_display(table: pd.DataFrame) -> pd.DataFrame:
    """``Scorecard.task_table()`` as the Routing page shows it: regret = oracle - router with its
    interval at that interval's precision, the paired test's p to two digits, agreement as a number."""
    rows = []
    for row in table.to_dict("records"):
        rows.append({
            "task": row["task"], "domain": row["domain"], "requests": row["requests"], "agreement": row["agreement"], "metric": row["metric"] or "—",
            REGRET_COLUMN: with_interval(row["regret"], row["regret_ci_low"], row["regret_ci_high"], signed=True),
            "p": p_text(row["p_value"]), "paired": row["n_paired"],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "domain", "requests", "agreement", "metric", REGRET_COLUMN, "p", "paired"])

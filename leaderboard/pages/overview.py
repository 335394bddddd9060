"""Overview: every candidate x task x metric, filterable and sortable, with data-source badges and a CSV download."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.views import apart_table, overview_table, summary_display

#: the summary's efficiency columns, as a caption names them when no candidate has one
SUMMARY_FIGURES = {
    "latency_ms": "single-stream latency",
    "generated_tokens_per_s": "generated tokens/s",
    "peak_memory_gb": "peak memory",
    "energy_per_correct_j": "energy per correct answer",
}

view = board_ui.current_view()
st.title("Overview")
st.caption(
    f"{len(view.results.candidates())} candidates, {len(view.results.runs)} runs read from "
    f"{board_ui.md(view.results.root)}. Efficiency columns are empty for runs without a medmoe profile."
)
if board_ui.no_results_message(view):
    st.stop()

st.subheader("Candidates")
st.caption(
    "Mean win rate (HELM): per task, the share of other candidates that ran it which each one beats on the task's own main metric "
    "(chance-corrected for multiple choice), ties counting half, averaged over its tasks. No uncertainty here: the Use cases page ranks "
    "with intervals, the Compare page tests differences."
)
summary = summary_display(view.frame)
if "lowest_task_score" in summary.columns and summary["lowest_task_score"].notna().all() and summary["lowest_task_score"].nunique() == 1 and len(summary) > 1:
    # the same number on every row tells candidates nothing apart (tiny runs score 0 somewhere)
    st.caption(f"Lowest task score left out: {summary['lowest_task_score'].iloc[0]:.3f} for every candidate.")
    summary = summary.drop(columns=["lowest_task_score"])
empty = [c for c in SUMMARY_FIGURES if c in summary.columns and summary[c].isna().all()]
if empty:  # a column nobody measured tells no candidate apart: said once instead of a column of blanks
    st.caption(f"Not measured for any candidate here: {', '.join(SUMMARY_FIGURES[c] for c in empty)}.")
# base widths that fit the 1400 px screen (the columns grow to fill a wider one); data sources are
# on the Results table below and the Compare page's badges
board_ui.show_table(
    summary.drop(columns=[*empty, "data"], errors="ignore"),
    {
        "candidate": st.column_config.TextColumn("candidate", width=board_ui.name_width(summary["candidate"], cap=330)),
        "kind": st.column_config.TextColumn("kind", width=52),
        "tasks": st.column_config.NumberColumn("tasks", width=52),
        "win_rate": st.column_config.ProgressColumn("mean win rate", min_value=0.0, max_value=1.0, format="%.2f", width=130),
        "lowest_task_score": st.column_config.NumberColumn("lowest task", format="%.3f", help="the lowest main metric over its tasks", width=90),
        "latency_ms": st.column_config.NumberColumn(
            "latency p50 (ms)", format="%.1f", help="single-stream latency p50, end to end, router included", width=112
        ),
        "generated_tokens_per_s": st.column_config.NumberColumn("tokens/s", format="%.1f", help="generated tokens per second", width=72),
        "peak_memory_gb": st.column_config.NumberColumn("memory (GB)", format="%.2f", help="peak memory", width=96),
        "energy_per_correct_j": st.column_config.NumberColumn("J/correct", format="%.3g", help="energy per correct answer (J)", width=80),
    },
    key="summary_table",
    every_row=True,
)

st.subheader("Results")
all_metrics = st.toggle("Show every metric (not only accuracy-type)", key="all_metrics")
table = board_ui.medical_first(overview_table(view.frame, all_metrics=all_metrics))  # opens on a medical task
board_ui.show_table(
    table,
    {
        "candidate": board_ui.name_column(table["candidate"]),
        "value": st.column_config.NumberColumn("value", format="%.3f"),
        "stderr": st.column_config.NumberColumn("± stderr", format="%.3f"),
        "latency_ms_p50": st.column_config.NumberColumn("single-stream latency p50 (ms)", format="%.1f"),
        "generated_tokens_per_s": st.column_config.NumberColumn("gen. tokens/s", format="%.1f"),
        "requests_per_s": st.column_config.NumberColumn("requests/s", format="%.2f"),
        "peak_memory_gb": st.column_config.NumberColumn("peak memory (GB)", format="%.3f"),
        "energy_j": st.column_config.NumberColumn("energy (J)", format="%.3g"),
        "energy_per_correct_j": st.column_config.NumberColumn("J per correct", format="%.3g"),
        "data": st.column_config.TextColumn("data source", help="hub, local directory, bundled sample or synthetic rows"),
        "sandbox": st.column_config.TextColumn("sandbox", help="how generated code ran: kernel namespaces, or resource limits and audit hooks only"),
        "per_item": st.column_config.TextColumn("per-item log", help="paired comparisons need lm-eval's --log_samples"),
        "date": st.column_config.DatetimeColumn("date", format="YYYY-MM-DD HH:mm"),
    },
    key="results_table",
)
st.download_button(
    "Download these rows as CSV",
    table.to_csv(index=False).encode("utf-8"),
    file_name="medmoe_results.csv",
    mime="text/csv",
    key="download_csv",
)

apart = apart_table(view.results)
apart = apart[apart["candidate"].isin(set(view.frame["candidate"]))]
if not apart.empty:
    st.subheader("Runs shown apart")
    st.caption(
        "Runs under another comparability key (limit, data source, adapter, task version, shots, generation settings): never merged with the rows above."
    )
    st.dataframe(apart, hide_index=True, width="stretch", key="apart_table")

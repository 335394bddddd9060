"""Overview: every candidate x task x metric, filterable and sortable, with a CSV download."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.views import overview_table, summary_display

view = board_ui.current_view()
st.title("Overview")
st.caption(
    f"{len(view.results.candidates())} candidates, {len(view.results.runs)} runs read from "
    f"{board_ui.md(view.results.root)}. Efficiency columns are empty for runs without a medmoe profile."
)
if board_ui.no_results_message(view):
    st.stop()

st.subheader("Candidates")
st.caption("Mean win rate (HELM): the share of other candidates each one beats on the tasks' main metrics, ties counting half.")
st.dataframe(
    summary_display(view.frame),
    hide_index=True,
    width="stretch",
    column_config={
        "win_rate": st.column_config.ProgressColumn("mean win rate", min_value=0.0, max_value=1.0, format="%.2f"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="%.3f"),
        "latency_ms": st.column_config.NumberColumn("single-stream latency p50 (ms)", format="%.1f"),
        "generated_tokens_per_s": st.column_config.NumberColumn("gen. tokens/s", format="%.1f"),
        "peak_memory_gb": st.column_config.NumberColumn("peak memory (GB)", format="%.2f"),
        "energy_per_correct_j": st.column_config.NumberColumn("J per correct", format="%.3g"),
    },
    key="summary_table",
)

st.subheader("Results")
all_metrics = st.toggle("Show every metric (not only accuracy-type)", key="all_metrics")
table = overview_table(view.frame, all_metrics=all_metrics)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "value": st.column_config.NumberColumn("value", format="%.4f"),
        "stderr": st.column_config.NumberColumn("± stderr", format="%.4f"),
        "latency_ms_p50": st.column_config.NumberColumn("single-stream latency p50 (ms)", format="%.1f"),
        "generated_tokens_per_s": st.column_config.NumberColumn("gen. tokens/s", format="%.1f"),
        "requests_per_s": st.column_config.NumberColumn("requests/s", format="%.2f"),
        "peak_memory_gb": st.column_config.NumberColumn("peak memory (GB)", format="%.3f"),
        "energy_j": st.column_config.NumberColumn("energy (J)", format="%.3g"),
        "energy_per_correct_j": st.column_config.NumberColumn("J per correct", format="%.3g"),
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

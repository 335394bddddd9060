"""Trade-offs: accuracy against latency, memory and energy, with the Pareto front marked."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.ranking import candidate_figures, pareto_front

AXES = {
    "latency_ms": ("Latency", "single-stream latency p50, end to end (ms)"),
    "peak_memory_gb": ("Memory", "peak memory (GB)"),
    "energy_per_correct_j": ("Energy", "energy per correct answer (J)"),
}

view = board_ui.current_view()
st.title("Trade-offs")
st.caption(
    "Each point is a candidate (mean over the filtered tasks). Diamonds joined by the dashed line form the Pareto front: no other candidate is both more accurate and cheaper."
)
if board_ui.no_results_message(view):
    st.stop()

figures = candidate_figures(view.frame).reset_index()
figures["peak_memory_gb"] = figures["peak_memory_bytes"] / 1e9
log_x = st.toggle("Logarithmic x axis", key="tradeoff_log")
for column, (title, axis_title) in AXES.items():
    st.subheader(f"Accuracy vs {title.lower()}")
    points = figures.dropna(subset=["accuracy", column])
    points = points[points[column].abs() != float("inf")]
    missing = sorted(set(figures["candidate"]) - set(points["candidate"]))
    if points.empty:
        st.info(f"No candidate has {title.lower()} figures yet (plain lm-eval runs and runs without a profile have none; energy needs NVML or RAPL).")
        continue
    front = pareto_front(points, maximize=["accuracy"], minimize=[column])
    points = points.assign(pareto=front.map({True: "on front", False: "dominated"}))
    use_log = log_x and bool((points[column] > 0).all())
    st.altair_chart(
        board_ui.tradeoff_chart(points[["candidate", "kind", "accuracy", column, "pareto"]], column, axis_title, use_log),
        width="stretch",
        key=f"chart_{column}",
    )
    if missing:
        st.caption(f"Not shown (no {title.lower()} measured): {board_ui.md(', '.join(missing))}")

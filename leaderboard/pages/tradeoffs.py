"""Trade-offs: one task's quality against latency, memory and energy, with 95% intervals as error bars and the Pareto front marked."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.ranking import pareto_front
from medmoe_lm_eval.analysis.tradeoffs import task_points
from medmoe_lm_eval.store.samples import load_items

AXES = {
    "latency_ms": ("Latency", "single-stream latency p50, end to end (ms)"),
    "peak_memory_gb": ("Memory", "peak memory (GB)"),
    "energy_per_correct_j": ("Energy", "energy per correct answer (J)"),
}

view = board_ui.current_view()
st.title("Trade-offs")
st.caption(
    "Each point is a candidate on one task: the task's own main metric (chance-corrected for multiple choice), never a mean of different "
    "metrics. Error bars: 95% bootstrap interval over the task's items (or ±1.96 lm-eval standard errors without a per-sample log); "
    "latency's horizontal bars: 95% interval of its p50 over the serving probe's measurements. "
    "Diamonds joined by the dashed line form the Pareto front: no other candidate is both better and cheaper; they carry their names, "
    "every other point names itself on hover. Colour: the kind of candidate (full precision, GPTQ, AWQ, GGUF, mixture of experts)."
)
if board_ui.no_results_message(view):
    st.stop()

counts = view.frame.drop_duplicates(["candidate", "task"])["task"].value_counts()
domains = view.frame.drop_duplicates("task").set_index("task")["domain"]
tasks = sorted(counts.index, key=lambda t: (domains.get(t) != board_ui.MEDICAL, -counts[t], t))  # opens on a medical task
task = st.selectbox("Task", tasks, key="tradeoff_task", format_func=lambda t: f"{t} ({counts[t]} candidates)")
items, _ = load_items(view.results, candidates=view.frame["candidate"].unique().tolist(), tasks=[task])
figures = task_points(view.frame, items, task)
log_x = st.toggle("Logarithmic x axis", key="tradeoff_log")
for column, (title, axis_title) in AXES.items():
    st.subheader(f"Quality vs {title.lower()}")
    points = figures.dropna(subset=["quality", column])
    points = points[points[column].abs() != float("inf")]
    missing = sorted(set(figures["candidate"]) - set(points["candidate"]))
    if points.empty:
        st.info(f"No candidate has {title.lower()} figures yet (plain lm-eval runs and runs without a profile have none; energy needs NVML or RAPL).")
        continue
    front = pareto_front(points, maximize=["quality"], minimize=[column])
    points = points.assign(pareto=front.map({True: "on front", False: "dominated"}))
    use_log = log_x and bool((points[column] > 0).all())
    bounds = [c for c in (f"{column}_low", f"{column}_high") if c in points.columns]  # latency has an interval of its own
    shown = points[["candidate", "kind", "metric", "quality", "ci_low", "ci_high", "n_items", "data", column, *bounds, "pareto"]]
    st.altair_chart(board_ui.tradeoff_chart(shown, column, axis_title, use_log), width="stretch", key=f"chart_{column}")
    if missing:
        st.caption(f"Not shown (no {title.lower()} measured): {board_ui.md(', '.join(missing))}")

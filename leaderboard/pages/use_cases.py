"""Use cases: candidates ranked by a declarative profile from ``use_cases.yaml``, each with a why."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.ranking import rank_use_case
from medmoe_lm_eval.analysis.use_cases import FIGURES
from medmoe_lm_eval.analysis.views import ranking_display

view = board_ui.current_view()
st.title("Use cases")
st.caption(f"Profiles come from {board_ui.md(view.use_cases_path)}: add a use case by adding a block there (weights and hard limits), no code needed.")
if board_ui.no_results_message(view):
    st.stop()
if not view.use_cases:
    st.warning("No use cases could be read; see the warnings above.")
    st.stop()

slug = st.selectbox("Use case", list(view.use_cases), format_func=lambda s: view.use_cases[s].name, key="use_case")
case = view.use_cases[slug]
st.markdown(board_ui.md(case.description) or "")
weights = ", ".join(f"{FIGURES[k].label} {w:g}" for k, w in case.weights.items())
limits = "; ".join(lim.describe() for lim in case.limits) or "none"
scope = ", ".join(case.domains or case.tasks) or "all tasks"
st.markdown(f"**Weights:** {board_ui.md(weights)}  \n**Hard limits:** {board_ui.md(limits)}  \n**Tasks counted:** {board_ui.md(scope)}")

ranking = rank_use_case(view.frame, case)
if ranking.message:
    st.warning(ranking.message)
for note in ranking.notes:
    st.info(note)
st.dataframe(
    ranking_display(ranking),
    hide_index=True,
    width="stretch",
    column_config={
        "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f"),
        "why": st.column_config.TextColumn("why", width="large"),
    },
    key="ranking_table",
)
st.caption(
    "Score = weighted mean of figures min-max normalised across these candidates (1 = best, a missing figure counts 0). Candidates failing a hard limit are listed without a rank."
)

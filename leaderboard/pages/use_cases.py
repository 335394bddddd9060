"""Use cases: candidates ranked by a declarative profile from ``use_cases.yaml``, each with a why."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.ranking import rank_results
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

ranking = rank_results(view.results, case, frame=view.frame)
if ranking.coverage is not None and ranking.coverage.tasks:
    st.markdown(
        f"**Counted tasks:** {board_ui.md(', '.join(ranking.coverage.tasks))} ({board_ui.md(ranking.coverage.describe(view.frame['candidate'].nunique()))})"
    )
if ranking.message:
    st.warning(board_ui.md(ranking.message))
for note in ranking.notes:  # they name candidates and files: text, not markdown
    st.info(board_ui.md(note))
st.dataframe(
    ranking_display(ranking),
    hide_index=True,
    width="stretch",
    column_config={
        "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f"),
        "rank": st.column_config.TextColumn("rank", help="1 + the candidates significantly better: candidates not told apart share it"),
        "rank range": st.column_config.TextColumn("rank range", help="joint 95% set: [rank, candidates - those significantly worse]"),
        "tied": st.column_config.TextColumn("tied", help="'= leader': not significantly worse than the top score"),
        "notes": st.column_config.TextColumn("notes", width="large"),
        "why": st.column_config.TextColumn("why", width="large"),
    },
    key="ranking_table",
)
st.caption(
    f"Score: {ranking.method}; each weighted efficiency figure is a win rate too (share of the other candidates beaten, "
    "a missing figure ranks last, a difference inside a measured figure's noise is a tie). Rank: 1 + the candidates significantly better "
    "(max-t bootstrap over every pair, jointly 95%), shared by candidates not told apart; '= leader' marks candidates not significantly "
    "worse than the first. Quality columns: each task's main metric, chance-corrected once per task. "
    "Candidates failing a hard limit are listed unscored; those missing a counted task or not comparable on it, without a rank."
)

"""Use cases: candidates ranked by a declarative profile from ``analysis/use_cases.yaml``, each with a why.

The page leads with the answer: how many candidates are ranked, then the ranking itself (rank, its
joint 95% range, the tie mark, the name, the score and the sentence saying which limits held and
which figure carried the rank, or why a row is unranked), all in view at 1400 px without scrolling
sideways. Every other figure, with its interval, is one toggle away; how the score is built follows.
"""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.ranking import rank_results
from medmoe_lm_eval.analysis.use_cases import FIGURES
from medmoe_lm_eval.analysis.views import lead_why, ranking_display

#: the ranking as the first screen shows it; the toggle adds every figure, per-task quality and counts
ANSWER = ["rank", "rank range", "tied", "candidate", "kind", "score", "why"]

view = board_ui.current_view()
st.title("Use cases")
if board_ui.no_results_message(view):
    st.stop()
if not view.use_cases:
    st.warning("No use cases could be read; see the warnings above.")
    st.stop()

slug = st.selectbox("Use case", list(view.use_cases), format_func=lambda s: view.use_cases[s].name, key="use_case")
case = view.use_cases[slug]
ranking = rank_results(view.results, case, frame=view.frame)
display = ranking_display(ranking)
ranked = int((display["rank"] != "—").sum())
unranked = len(display) - ranked
st.subheader(f"{ranked} of {len(display)} candidate(s) ranked")
st.caption(
    board_ui.md(case.description)
    + (f" The {unranked} unranked row(s) come last; 'why' says what each lacks (a hard limit, a task, comparable runs)." if unranked else "")
)
if ranking.message:
    st.warning(board_ui.md(ranking.message))
every_figure = st.toggle("Show every figure (with its interval), per-task quality and counts", key="every_figure")
table = display if every_figure else display[ANSWER].assign(why=lead_why(ranking))
# base widths that fit the 1024 px screen (the columns grow to fill a wider one); long names and
# reasons wrap within the rows' four lines instead of being cut or scrolling sideways
board_ui.show_table(
    table,
    {
        "rank": st.column_config.TextColumn("rank", width=44, help="1 + the candidates significantly better: candidates not told apart share it"),
        "rank range": st.column_config.TextColumn("range", width=52, help="joint 95% set: [rank, candidates - those significantly worse]"),
        "tied": st.column_config.TextColumn("tie", width=68, help="'= leader': not significantly worse than the top score"),
        "candidate": st.column_config.TextColumn("candidate", width=board_ui.name_width(display["candidate"], cap=board_ui.RANKING_NAME_CAP)),
        "kind": st.column_config.TextColumn("kind", width=52),
        "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.3f", width=72),
        "notes": st.column_config.TextColumn("notes", width="large"),
        "why": st.column_config.TextColumn("why", width=250, help="limits met or failed (with the figure), and the figure that carried the score"),
    },
    key="ranking_table",
    row_px=board_ui.WRAP_ROW_PX,
    every_row=True,
)
for note in ranking.notes:
    st.info(board_ui.md(note))  # they name candidates and files: text, not markdown

weights = ", ".join(f"{FIGURES[k].label} {w:g}" for k, w in case.weights.items())
limits = "; ".join(lim.describe() for lim in case.limits) or "none"
scope = ", ".join(case.domains or case.tasks) or "all tasks"
counted = f"  \n**Counted tasks:** {board_ui.md(', '.join(ranking.coverage.tasks))}" if ranking.coverage is not None and ranking.coverage.tasks else ""
st.markdown(f"**Weights:** {board_ui.md(weights)}  \n**Hard limits:** {board_ui.md(limits)}  \n**Tasks in scope:** {board_ui.md(scope)}{counted}")
st.caption(
    f"Score: {ranking.method}; each weighted efficiency figure is a win rate too (share of the other candidates beaten, "
    "a missing figure ranks last, a difference inside a measured figure's noise is a tie). Rank: 1 + the candidates significantly better "
    "(max-t bootstrap over every pair, jointly 95%), shared by candidates not told apart; '= leader' marks candidates not significantly "
    "worse than the first. Quality columns: each task's main metric, chance-corrected once per task. "
    "Candidates failing a hard limit are listed unscored; those missing a counted task or not comparable on it, without a rank. "
    f"Profiles come from {board_ui.md(view.use_cases_path)}: add a use case by adding a block there (weights and hard limits), no code needed."
)

"""The medmoe leaderboard: ``streamlit run leaderboard/app.py`` (or ``medmoe leaderboard``).

The entrypoint frames every page: it loads the results folder named by ``MEDMOE_RESULTS``
(default ``results/``; the board only reads it), draws the shared sidebar filters and any reading
problems, then runs the page chosen in ``st.navigation``. To add a page, write
``pages/<name>.py`` (start it with ``view = board_ui.current_view()``) and add its ``st.Page``
to ``PAGES`` below.
"""

from __future__ import annotations

import board_ui
import streamlit as st

st.set_page_config(page_title="medmoe leaderboard", page_icon="🩺", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/table_chart:", default=True),
    st.Page("pages/use_cases.py", title="Use cases", icon=":material/checklist:"),
    st.Page("pages/tradeoffs.py", title="Trade-offs", icon=":material/scatter_plot:"),
    st.Page("pages/routing.py", title="Routing", icon=":material/alt_route:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/fidelity.py", title="Fidelity", icon=":material/difference:"),
    st.Page("pages/consult.py", title="Consult", icon=":material/forum:"),
]

page = st.navigation(PAGES)
board_ui.narrow_margins()
view = board_ui.build_view()
board_ui.show_issues(view)
page.run()

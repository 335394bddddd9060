"""Compare: two candidates side by side per task, with deltas, their configs and profiles."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.views import compare_candidates, run_details

view = board_ui.current_view()
st.title("Compare candidates")
if board_ui.no_results_message(view):
    st.stop()

names = sorted(view.frame["candidate"].unique())
left, right = st.columns(2)
a = left.selectbox("Candidate A", names, index=0, key="compare_a")
b = right.selectbox("Candidate B", names, index=min(1, len(names) - 1), key="compare_b")
if a == b:
    st.info("Pick two different candidates to see deltas.")

table = compare_candidates(view.frame, a, b)
st.caption("delta = B - A; 'better' follows each metric's direction (lower latency, memory and energy are better).")
st.dataframe(
    table, hide_index=True, width="stretch", column_config={"delta": st.column_config.NumberColumn("delta (B - A)", format="%.4g")}, key="compare_table"
)

PROFILE_KEYS = ("device", "hardware", "total", "memory", "energy", "router", "experts")
st.subheader("Runs: configs and profiles")
for column, name in zip(st.columns(2), (a, b), strict=True):
    with column:
        st.markdown(f"**{board_ui.md(name)}**")
        for detail in run_details(view.results, name):
            with st.expander(f"run {board_ui.md(detail['run_id'])}", expanded=False):
                st.write({k: detail[k] for k in ("date", "model_type", "lm_eval_version", "git_hash", "hardware")})
                st.markdown("Adapter config" if detail["adapter"] else "Model arguments")
                st.json(detail["adapter"] or detail["model_args"] or {}, expanded=False)
                if detail["profile"]:
                    st.markdown("Profile")
                    st.json({k: detail["profile"].get(k) for k in PROFILE_KEYS if k in detail["profile"]}, expanded=False)
                else:
                    st.caption("No efficiency profile for this run.")

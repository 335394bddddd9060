"""Compare: two candidates task by task with paired intervals and tests (the numbers of ``medmoe compare``), then efficiency, configs and profiles."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.comparison import compare
from medmoe_lm_eval.analysis.subjects import subject_breakdown, weakest
from medmoe_lm_eval.analysis.task_errors import clustered_errors
from medmoe_lm_eval.analysis.views import (
    DIFFERENCE,
    compare_candidates,
    comparison_display,
    efficiency_display,
    run_details,
    sandbox_badge,
    source_badge,
    subjects_display,
)

view = board_ui.current_view()
st.title("Compare candidates")
if board_ui.no_results_message(view):
    st.stop()

names = sorted(view.frame["candidate"].unique())
ran = view.frame.groupby("candidate")["task"].agg(set)
# opens on the two candidates that share the most tasks (a default with something to compare)
first, second = max(((x, y) for i, x in enumerate(names) for y in names[i + 1 :]), key=lambda p: len(ran[p[0]] & ran[p[1]]), default=(names[0], names[0]))
left, right = st.columns(2)
a = left.selectbox("Candidate A", names, index=names.index(first), key="compare_a")
b = right.selectbox("Candidate B", names, index=names.index(second), key="compare_b")
if a == b:
    st.info("Pick two different candidates to see deltas.")

for column, name in zip((left, right), (a, b), strict=True):
    rows = view.frame[view.frame["candidate"] == name]
    badges = sorted({source_badge(s) for s in rows["data_source"]}) + sorted({sandbox_badge(s) for s in rows["sandbox"] if sandbox_badge(s)})
    with column:
        for badge in badges:
            st.badge(badge, color="orange" if badge in ("bundled sample", "synthetic", "sandbox: rlimits+audit") else "blue")
st.caption(
    "Badges: where each run's task data came from (hub dataset, local directory, bundled sample, synthetic rows; 'source unknown': "
    "the results file does not record it, e.g. a plain lm-eval run of a built-in task) and, for code tasks, how generated code was isolated."
)

comparison = compare(view.results, a, b)
st.subheader("Quality, task by task")
st.caption(
    "delta = B - A on the task's main metric, over the documents both answered (matched on doc_id and doc_hash), with its 95% paired "
    "bootstrap interval; p: exact McNemar for right/wrong scores, paired permutation test otherwise; Holm-adjusted across these tasks. "
    "Where the interval contains 0 the verdict is 'no significant difference', shown with the MDE: the smallest true difference "
    "the test would detect with 80% power at these items (a larger MDE than the gap you care about means the run could not have seen it). "
    "Tasks that name a cluster field resample whole clusters (the clusters column of the every-column table below it). "
    "Figures are written to the precision their interval supports (the half-width to two digits)."
)
table = comparison.table()
st.dataframe(
    comparison_display(table),
    hide_index=True,
    width="stretch",
    row_height=board_ui.WRAP_ROW_PX // 2,
    column_config={
        "A": st.column_config.TextColumn("A", help=f"A: {a}", width=64),
        "B": st.column_config.TextColumn("B", help=f"B: {b}", width=64),
        DIFFERENCE: st.column_config.TextColumn("B - A [95%]", help="delta = B - A with its 95% paired bootstrap interval", width=170),
        "p (Holm)": st.column_config.TextColumn("p (Holm)", width=72),
        "paired": st.column_config.NumberColumn("paired", help="documents both answered", width=64),
        "MDE": st.column_config.TextColumn("MDE", help="minimum detectable effect at 80% power", width=64),
        "verdict": st.column_config.TextColumn("verdict", width=200),
    },
    key="compare_table",
)
with st.expander("Every column: raw p, test, clusters, discordance (4 decimals)"):
    st.dataframe(
        table[["task", "metric", "a", "b", "delta", "ci_low", "ci_high", "p_value", "p_holm", "n_paired", "test", "verdict", "mde", "n_clusters", "note"]],
        hide_index=True,
        width="stretch",
        column_config={
            "a": st.column_config.NumberColumn("A", format="%.4f", help=f"A: {a}"),
            "b": st.column_config.NumberColumn("B", format="%.4f", help=f"B: {b}"),
            "delta": st.column_config.NumberColumn("delta (B - A)", format="%.4f"),
            "ci_low": st.column_config.NumberColumn("95% low", format="%.4f"),
            "ci_high": st.column_config.NumberColumn("95% high", format="%.4f"),
            "p_value": st.column_config.NumberColumn("p", format="%.3g"),
            "p_holm": st.column_config.NumberColumn("p (Holm)", format="%.3g"),
            "n_paired": st.column_config.NumberColumn("paired items"),
            "mde": st.column_config.NumberColumn("MDE (80% power)", format="%.4f"),
            "n_clusters": st.column_config.NumberColumn("clusters"),
        },
        key="compare_detail_table",
    )
for side, tasks in ((a, comparison.only_a), (b, comparison.only_b)):
    if tasks:
        st.caption(board_ui.md(f"Only {side} ran: {', '.join(tasks)} (not compared)."))

errors = clustered_errors(view.results, [a, b])
if not errors.empty:
    st.subheader("Standard errors with clustered items")
    st.caption(
        "Tasks whose items come in clusters (one source document, one subject): lm-eval's standard error treats items as independent; "
        "the clustered one (Miller 2024) does not. Design effect = (clustered / naive)^2: how many items count as one independent item."
    )
    board_ui.show_table(
        errors,
        {
            "candidate": board_ui.name_column(errors["candidate"]),
            **{c: st.column_config.NumberColumn(c.replace("stderr_", "SE "), format="%.3f") for c in ("stderr_lm_eval", "stderr_naive", "stderr_clustered")},
            "design_effect": st.column_config.NumberColumn("design effect", format="%.2f"),
            "n_clusters": st.column_config.NumberColumn("clusters"),
        },
        key="clustered_errors_table",
    )

subjects = subject_breakdown(view.results, a, b if b != a else None)
subjects = subjects[subjects["task"].isin(set(view.frame["task"]))]
if not subjects.empty:
    st.subheader(f"Where {board_ui.md(a)} fails: per subject")
    st.caption(
        "Per subject of the documents (MedMCQA subject, MMLU subject, MedQA step): A's main metric with its 95% interval (Wilson for right/wrong), "
        "weakest first, and B - A on the documents both answered with its 95% paired bootstrap interval."
    )
    line = weakest(subjects)
    if line:
        st.caption(board_ui.md(f"Weakest: {line}"))
    st.dataframe(
        subjects_display(subjects),
        hide_index=True,
        width="stretch",
        key="subjects_table",
        column_config={
            "A [95% interval]": st.column_config.TextColumn("A [95%]", help=f"A: {a}"),
            "B": st.column_config.TextColumn("B", help=f"B: {b}"),
            DIFFERENCE: st.column_config.TextColumn("B - A [95%]"),
        },
    )

efficiency = compare_candidates(view.frame, a, b)
efficiency = efficiency[efficiency["filter"] == ""].rename(columns={a: "value_a", b: "value_b", f"{a} (A)": "value_a", f"{b} (B)": "value_b"})
if not efficiency.empty:
    st.subheader("Efficiency")
    st.caption(
        "Single-stream latency p50 comes with the 95% interval of B - A, from redrawing each run's serving-probe measurements; "
        "where it contains 0 the data do not tell the two apart. Tokens/s, memory and energy are single measurements: no interval, three digits."
    )
    st.dataframe(
        efficiency_display(efficiency),
        hide_index=True,
        width="stretch",
        column_config={
            "A": st.column_config.TextColumn("A", help=f"A: {a}"),
            "B": st.column_config.TextColumn("B", help=f"B: {b}"),
            DIFFERENCE: st.column_config.TextColumn("B - A [95%]"),
        },
        key="efficiency_table",
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

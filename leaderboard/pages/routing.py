"""Routing: where a mixture's router sent each task's requests, how often it agreed with the
task's domain, what routing cost against the oracle router, and which examples it misrouted."""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.routing import is_oracle, misrouted, mixture_candidates, oracle_partner, routing_confusion, routing_regret, routing_share
from medmoe_lm_eval.analysis.scorecard import REGRET_DEFINITION, scorecard
from medmoe_lm_eval.analysis.views import scorecard_display

view = board_ui.current_view()
st.title("Routing")
if board_ui.no_results_message(view):
    st.stop()

shown = set(view.frame["candidate"])
mixtures = [c for c in mixture_candidates(view.results) if c in shown]
if not mixtures:
    st.info("No mixture-of-experts runs among the filtered candidates. Evaluate an adapter with `kind: moe` to see its routing here.")
    st.stop()

mixtures.sort(key=lambda c: oracle_partner(view.results, c) is None)  # opens on a mixture with an oracle to compare with
candidate = st.selectbox("Mixture", mixtures, key="routing_candidate")
tasks = set(view.frame.loc[view.frame["candidate"] == candidate, "task"])
oracle_itself = is_oracle(view.results, candidate)
st.caption(
    f"One sign everywhere (this page, `medmoe routing` and its --json): regret = {REGRET_DEFINITION} on the task's main metric; "
    "positive = accuracy routing lost."
)

st.subheader("Scorecard")
card = scorecard(view.results, candidate)
if oracle_itself:
    st.info(
        "This mixture is the oracle: it routes every request to its task's domain expert, so it is the reference the routed "
        "mixtures over the same experts are measured against (their regret and gap recovered), not a router to score. "
        "Pick a routed mixture above to see what its routing costs."
    )
cells = [] if oracle_itself else st.columns(5)
for column, (label, value, fmt) in zip(
    cells,
    (("routing accuracy", card.routing_accuracy, "{:.3f}"), ("gap recovered", card.gap_recovered, "{:.3f}"),
     ("router ms p50", card.router_ms_p50, "{:.3g}"), ("router ms p99", card.router_ms_p99, "{:.3g}"), ("oracle", card.oracle_candidate, "{}")),
    strict=False,
):  # fmt: skip
    column.metric(label, "n/a" if value is None or value != value else fmt.format(value))
if not oracle_itself:
    st.caption(
        board_ui.md(
            f"Best single expert: {card.best_single or 'none on this board'}. Gap recovered = (mixture - best single expert) / (oracle - best single expert) "
            "on mean chance-corrected quality over the tasks all three ran. Per task: agreement = share of requests with the oracle's top expert; "
            "regret = oracle - router on the task's main metric with its 95% paired bootstrap interval (positive: routing lost accuracy)."
        )
    )
    for note in card.notes:
        st.caption(board_ui.md(note))
score_table = card.task_table()
score_table = scorecard_display(score_table[score_table["task"].isin(tasks)])
st.dataframe(
    score_table.dropna(axis=1, how="all").loc[:, lambda t: (t != "—").any()],  # no column of dashes (the oracle's regret)
    hide_index=True,
    width="stretch",
    column_config={"agreement": st.column_config.NumberColumn("agreement", format="%.2f", help="share of requests with the oracle's top expert")},
    key="scorecard_table",
)

st.subheader("Share of each task's requests per expert")
share = routing_share(view.results)
share = share[(share["candidate"] == candidate) & share["task"].isin(tasks)]
if share.empty:
    st.info("This run recorded no routing summary.")
else:
    st.altair_chart(board_ui.heatmap(share, "expert", "task", "share", "top expert per request"), width="stretch", key="share_heatmap")
    agreement = share.drop_duplicates("task")[["task", "domain", "requests", "agreement"]]
    st.dataframe(
        agreement, hide_index=True, column_config={"agreement": st.column_config.NumberColumn("agrees with task domain", format="%.2f")}, key="agreement_table"
    )

st.subheader("Router vs task domain")
log, problems = board_ui.candidate_routing_log(view.results, candidate)
for problem in problems:
    st.warning(board_ui.md(problem))
log = log[log["task"].isin(tasks)]
confusion = routing_confusion(log)
if confusion.empty:
    st.info("No routing log for this candidate (it is written next to the results file when the run has an output path).")
else:
    long = confusion.stack().rename("requests").reset_index()
    st.altair_chart(
        board_ui.heatmap(long, "routed domain", "task domain", "requests", "requests by task domain and routed domain", fmt="d"),
        width="stretch",
        key="confusion_heatmap",
    )

st.subheader("Accuracy regret against the oracle router")
regret = routing_regret(view.results)
regret = regret[(regret["candidate"] == candidate) & regret["task"].isin(tasks)]
if oracle_itself:
    st.info("The oracle's own regret is zero by definition; the routed mixtures' regret against it is shown when one of them is selected.")
elif regret.empty:
    st.info("No oracle run over the same experts. Evaluate a copy of this adapter with `router: {type: oracle}` to measure what routing costs.")
else:
    st.caption(
        f"regret = {REGRET_DEFINITION} on the task's lm-eval aggregate (positive: routing lost accuracy); the scorecard above has it per document with its interval."
    )
    st.dataframe(
        regret,
        hide_index=True,
        column_config={
            "router_value": st.column_config.NumberColumn("router", format="%.3f"),
            "oracle_value": st.column_config.NumberColumn("oracle value", format="%.3f"),
            "regret": st.column_config.NumberColumn(f"regret ({REGRET_DEFINITION})", format="%+.3f"),
        },
        key="regret_table",
    )

st.subheader("Misrouted examples")
wrong = misrouted(log)
if wrong.empty:
    st.info("No misrouted requests in the routing log.")
else:
    st.dataframe(
        wrong,
        hide_index=True,
        width="stretch",
        row_height=board_ui.WRAP_ROW_PX // 2 + 20,  # the question wraps over three lines
        column_config={"doc_id": st.column_config.NumberColumn("doc", width=48), "text": st.column_config.TextColumn("text", width=320)},
        key="misrouted_table",
    )

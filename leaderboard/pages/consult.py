"""Consult: ask an evaluated candidate a question and watch its router work.

Candidates come from the results folder (each medmoe run records its adapter and its sha256);
one runs only through the user's own matching adapter file (``medmoe_lm_eval.harness.consult_trust``). Browsing loads
no model; the first question builds the candidate's consultant once per app process
(``consult_ui.live_consultant``), and each expert loads only when a question is routed to it.
"""

from __future__ import annotations

from typing import Any

import board_ui
import consult_ui
import pandas as pd
import streamlit as st

RESULT_KEY = "consult_last"

view = board_ui.current_view()
st.title("Consult a candidate")
st.warning(consult_ui.DISCLAIMER, icon="⚠️")
if board_ui.no_results_message(view):
    st.stop()

candidates = consult_ui.consult_candidates(view.results, view.frame["candidate"])
ready = {c.name: c for c in candidates if c.ready}
blocked = [c for c in candidates if not c.ready]
if blocked:
    with st.expander(f"{len(blocked)} candidate(s) cannot be consulted on this machine"):
        st.dataframe(pd.DataFrame([{"candidate": c.name, "why not": c.reason} for c in blocked]), hide_index=True, width="stretch", key="consult_unavailable")
if not ready:
    st.info(
        "None of the shown candidates can answer on this machine (see why above). Candidates evaluated here with `medmoe eval --model medmoe` whose adapter files and models are still on disk can; a results folder from elsewhere is only read, never run."
    )
    st.stop()

name = st.selectbox("Candidate", list(ready), key="consult_candidate")
candidate = ready[name]
st.caption(board_ui.md(candidate.describe()))
(st.warning if "recorded" in candidate.origin else st.caption)(board_ui.md(candidate.origin[:1].upper() + candidate.origin[1:] + "."))
task = None
if candidate.router_type == "oracle":
    tasks = sorted(set(view.frame.loc[view.frame["candidate"] == name, "task"]))
    task = st.selectbox("Task (the oracle router routes by the task's domain)", tasks, key="consult_task")


def _use_example(text: str) -> None:
    st.session_state["consult_question"] = text


st.caption("Examples")
for column, (label, text) in zip(st.columns(len(consult_ui.EXAMPLES)), consult_ui.EXAMPLES.items(), strict=True):
    column.button(label, key=f"consult_example_{label}", on_click=_use_example, args=(text,), width="stretch")

with st.form("consult_form"):
    question = st.text_area("Question", key="consult_question", height=110, placeholder="Type a question for this candidate…")
    max_new_tokens = st.slider("Answer length (new tokens at most)", 8, 512, 128, step=8, key="consult_max_new_tokens")
    asked = st.form_submit_button("Ask", type="primary")


def show_routing(result: dict[str, Any]) -> None:
    frame = result["frame"]
    st.subheader("Router gate")
    st.altair_chart(consult_ui.gate_chart(frame), width="stretch", key="consult_gate_chart")
    st.markdown(consult_ui.activated_markdown(frame, board_ui.md))
    multi, sentence = consult_ui.sharing_text(frame, result["top"], result["static"])
    (st.info if multi else st.caption)(board_ui.md(sentence))
    for note in result["router_notes"]:
        st.info(board_ui.md(f"note: {note}"))


def answer_markdown(text: str) -> str:
    return board_ui.md(text).replace("\n", "  \n") if text.strip() else "_(the expert generated no text)_"


def show_footer(result: dict[str, Any]) -> None:
    for note in result["notes"]:
        st.warning(board_ui.md(f"note: {note}"))
    routing, load, generation, speed = st.columns(4)
    routing.metric("Routing", f"{result['routing_ms']:.2f} ms")
    load.metric("Expert load", f"{result['load_s']:.2f} s" if result["load_s"] > 0 else "already loaded")
    generation.metric("Generation", f"{result['generation_s']:.2f} s")
    speed.metric("Speed", f"{result['tokens'] / result['generation_s']:.1f} tokens/s" if result["generation_s"] > 0 else "—")
    st.caption(board_ui.md(f"Loaded in this app process: {', '.join(result['loaded']) or 'none'} (each expert loads once, when a question first needs it)."))


def consult(question: str) -> dict[str, Any] | None:
    """Route, draw the gate, stream the answer; the result for later reruns (None on error)."""
    try:
        live = consult_ui.live_consultant(candidate.key, candidate.adapter)
        consultant = live.consultant
        with live.lock:
            decision = consultant.decide(question, task)
            top = decision.route.top
            result = {
                "key": candidate.key, "question": question, "frame": consult_ui.gate_frame(decision, candidate.adapter), "top": top,
                "static": candidate.router_type in ("fixed", "uniform"), "routing_ms": decision.routing_ms, "router_notes": consultant.notes,
            }  # fmt: skip
            show_routing(result)
            st.subheader(f"Answer from {board_ui.md(top)}")
            with st.container(border=True):
                box = st.empty()
            pieces = consultant.answer(decision, int(max_new_tokens))
            waiting = f"Loading expert {top} (first use in this app process)…" if top not in consultant.pool.resident else f"{top} is answering…"
            with st.spinner(waiting):
                _, answer = next(pieces)
            for _, answer in pieces:
                box.markdown(answer_markdown(answer.text) + " ▌")
            box.markdown(answer_markdown(answer.text))
            loaded = [f"{n} ({consultant.pool.load_counts[n]} load)" for n in consultant.pool.resident]
    except consult_ui.user_errors() as exc:
        st.error(board_ui.md(f"{type(exc).__name__}: {exc}"))
        return None
    result.update(text=answer.text, notes=list(answer.notes), load_s=answer.load_s, generation_s=answer.generation_s, tokens=answer.tokens, loaded=loaded)
    show_footer(result)
    return result


if asked and not question.strip():
    st.warning("Type a question first, or pick an example above.")
elif asked:
    st.session_state[RESULT_KEY] = consult(question.strip())
elif (last := st.session_state.get(RESULT_KEY)) and last["key"] == candidate.key:
    st.caption(board_ui.md(f"Last question: {last['question'][:300]}"))
    show_routing(last)
    st.subheader(f"Answer from {board_ui.md(last['top'])}")
    with st.container(border=True):
        st.markdown(answer_markdown(last["text"]))
    show_footer(last)

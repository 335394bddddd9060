"""Fidelity: each quantized copy against its full-precision parent on the same documents, worst copy first.

Equal accuracy can hide a broken copy whose answers flip both ways; agreement, flips and KL
divergence show it (the numbers of ``medmoe fidelity``), recovery, the same-top rate and a
non-inferiority verdict at a margin the user sets say whether the copy is good enough, and
calibration shows whether each candidate's confidence can be trusted.
"""

from __future__ import annotations

import board_ui
import streamlit as st

from medmoe_lm_eval.analysis.calibration import calibration
from medmoe_lm_eval.analysis.fidelity import fidelity, fidelity_table
from medmoe_lm_eval.analysis.noninferiority import DEFAULT_MARGIN
from medmoe_lm_eval.analysis.views import fidelity_display

view = board_ui.current_view()
st.title("Fidelity of quantized copies")
if board_ui.no_results_message(view):
    st.stop()

shown = set(view.frame["candidate"])
margin = st.number_input(
    "Non-inferiority margin (loss on the task's metric a copy may have; 0.01 = one point)", min_value=0.0, max_value=0.5,
    value=DEFAULT_MARGIN, step=0.005, format="%.3f", key="fidelity_margin",
)  # fmt: skip
rows, notes = fidelity(view.results, float(margin))
table = fidelity_table(rows)
table = table[table["candidate"].isin(shown) & table["task"].isin(set(view.frame["task"]))]
for note in notes:
    st.caption(board_ui.md(note))
if table.empty:
    st.info(
        "No quantized copy with a parent among the filtered candidates. A copy names its parent with `parent: <candidate>` in its adapter (`medmoe quantize` writes it)."
    )
else:
    st.caption(
        "Per copy and task, on the documents both answered (doc_id and doc_hash): agreement = same answer (multiple choice: same top option; "
        "generation: identical output); flips correct→wrong and wrong→correct as counts and rates with 95% Wilson intervals; delta = copy - parent "
        "with its 95% paired bootstrap interval; KL(parent || copy) between the softmaxes of the option log-likelihoods; perplexity ratio = copy / parent. "
        "Recovery = copy / parent with its 95% paired bootstrap interval; same top = share of the same answer with its Wilson interval; verdict: "
        "non-inferior when the interval of copy - parent lies above -margin, inferior when below, else how many items would settle it."
    )
    lead = fidelity_display(table)
    # base widths that fit 1400 px (the columns grow on a wider screen); names and verdicts wrap
    board_ui.show_table(
        lead,
        {
            "copy": st.column_config.TextColumn("copy", width=board_ui.name_width(lead["copy"], cap=140)),
            "parent": st.column_config.TextColumn("parent", width=board_ui.name_width(lead["parent"], cap=120)),
            "task": st.column_config.TextColumn("task", width=board_ui.name_width(lead["task"], cap=130)),
            "verdict": st.column_config.TextColumn(f"verdict (margin {margin:g})", width=180),
            "copy - parent [95%]": st.column_config.TextColumn("copy - parent [95%]", width=150, help="on the task's main metric, paired bootstrap interval"),
            "flips c→w / w→c": st.column_config.TextColumn(
                "flips c→w / w→c", width=100, help="documents the parent got right and the copy wrong / the reverse"
            ),
            "KL mean": st.column_config.TextColumn("KL mean", width=70, help="mean KL(parent || copy) over the option distributions"),
        },
        key="fidelity_table",
        row_px=board_ui.WRAP_ROW_PX,
        every_row=True,
    )
    with st.expander("Every figure: recovery, same top, flip rates with Wilson intervals, KL p99, perplexity ratio (4 decimals)"):
        st.dataframe(
            table[["candidate", "parent", "task", "n_paired", "verdict_text", "recovery", "recovery_ci_low", "recovery_ci_high", "same_top",
                   "same_top_ci_low", "same_top_ci_high", "agreement", "flips_correct_to_wrong", "flip_cw_rate", "flip_cw_low", "flip_cw_high",
                   "flips_wrong_to_correct", "flip_wc_rate", "flip_wc_low", "flip_wc_high", "delta", "delta_low", "delta_high", "kl_mean", "kl_p99", "ppl_ratio"]],
            hide_index=True, width="stretch", key="fidelity_detail_table",
            column_config={
                "candidate": st.column_config.TextColumn("copy"), "n_paired": st.column_config.NumberColumn("paired"),
                "verdict_text": st.column_config.TextColumn(f"verdict (margin {margin:g})"), "same_top": st.column_config.NumberColumn("same top", format="%.4f"),
                **{c: st.column_config.NumberColumn(c, format="%.4f") for c in ("recovery", "recovery_ci_low", "recovery_ci_high", "same_top_ci_low", "same_top_ci_high")},
                "flips_correct_to_wrong": st.column_config.NumberColumn("c→w"), "flips_wrong_to_correct": st.column_config.NumberColumn("w→c"),
                **{c: st.column_config.NumberColumn(c, format="%.4f") for c in ("agreement", "flip_cw_rate", "delta", "kl_mean", "kl_p99", "ppl_ratio",
                                                                             "flip_cw_low", "flip_cw_high", "flip_wc_rate", "flip_wc_low", "flip_wc_high", "delta_low", "delta_high")},
            },
        )  # fmt: skip

st.subheader("Calibration on multiple-choice tasks")
cal, problems = calibration(view.results, sorted(shown))
cal = cal[cal["task"].isin(set(view.frame["task"]))]
if cal.empty:
    st.info("No multiple-choice per-item records (runs need --log_samples).")
else:
    st.caption(
        "ece: expected calibration error over 10 equal-width confidence bins (0 = confidence matches accuracy); brier_score: mean multi-class "
        "Brier score; acc_at_80 / acc_at_50: accuracy on the 80% / 50% most confident answers (abstaining on the least confident)."
    )
    st.dataframe(
        cal.sort_values(["task", "ece"], ascending=[True, False]), hide_index=True, width="stretch", key="calibration_table",
        column_config={"candidate": board_ui.name_column(cal["candidate"]),
                       **{c: st.column_config.NumberColumn(c, format="%.3f") for c in ("accuracy", "ece", "brier_score", "acc_at_80", "acc_at_50")}},
    )  # fmt: skip

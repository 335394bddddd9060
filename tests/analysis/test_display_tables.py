"""The board's lead tables as text: hand-made rows, figures at the precision their interval supports."""

from __future__ import annotations

import math

import pandas as pd

from medmoe_lm_eval.analysis.views import (
    DIFFERENCE,
    REGRET_COLUMN,
    comparison_display,
    efficiency_display,
    fidelity_display,
    p_text,
    scorecard_display,
    subjects_display,
)


def test_comparison_display_by_hand():
    table = pd.DataFrame(
        [
            {"task": "t1", "metric": "acc", "a": 0.5, "b": 0.6667, "delta": 0.1667, "ci_low": -0.3333, "ci_high": 0.6667, "p_holm": 0.62,
             "n_paired": 6, "verdict": "no significant difference", "mde": 0.71, "note": ""},
            {"task": "t2", "metric": "acc", "a": 0.40, "b": 0.4512, "delta": 0.0512, "ci_low": 0.0431, "ci_high": 0.0593, "p_holm": 0.0004,
             "n_paired": 9000, "verdict": "B higher", "mde": 0.0123, "note": ""},
        ]
    )  # fmt: skip
    shown = comparison_display(table).set_index("task")
    assert "note" not in shown.columns  # no notes: no empty column
    # half-width 0.5 -> 2 places; half-width 0.0081 -> 4 places
    assert shown.loc["t1", DIFFERENCE] == "+0.17 [-0.33, +0.67]" and shown.loc["t1", "A"] == "0.50" and shown.loc["t1", "MDE"] == "0.71"
    assert shown.loc["t2", DIFFERENCE] == "+0.0512 [+0.0431, +0.0593]" and shown.loc["t2", "B"] == "0.4512" and shown.loc["t2", "p (Holm)"] == "< 0.001"
    assert p_text(0.0312) == "0.031" and p_text(math.nan) == "—"


def test_efficiency_display_units_by_hand():
    table = pd.DataFrame(
        [
            {"task": "t", "metric": "latency_ms_p50", "value_a": 120.0, "value_b": 95.5, "ci_low": -40.0, "ci_high": -10.0},
            {"task": "t", "metric": "peak_memory_bytes", "value_a": 1.5e9, "value_b": 1.25e9, "ci_low": math.nan, "ci_high": math.nan},
            {"task": "t", "metric": "generated_tokens_per_s", "value_a": 31.234, "value_b": math.nan, "ci_low": math.nan, "ci_high": math.nan},
        ]
    )
    shown = efficiency_display(table).set_index("figure")
    # latency: B - A = -24.5 ms, half-width 15 ms -> whole ms
    assert shown.loc["single-stream latency p50", "A"] == "120.0 ms" and shown.loc["single-stream latency p50", DIFFERENCE] == "-24 [-40, -10] ms"
    assert shown.loc["peak memory", "A"] == "1.50 GB" and shown.loc["peak memory", DIFFERENCE] == "-0.25 GB"
    assert shown.loc["generated tokens/s", "A"] == "31.2 tok/s" and shown.loc["generated tokens/s", DIFFERENCE] == "—"


def test_subjects_and_scorecard_display_by_hand():
    subjects = pd.DataFrame(
        [{"task": "t", "subject": "Anatomy", "metric": "acc", "n": 5, "a": 0.4, "a_low": 0.1176, "a_high": 0.7693, "b": 0.6, "delta": 0.2,
          "ci_low": -0.2, "ci_high": 0.6}]
    )  # fmt: skip
    row = subjects_display(subjects).iloc[0]
    assert row["A [95% interval]"] == "0.40 [0.12, 0.77]" and row["B"] == "0.60" and row[DIFFERENCE] == "+0.20 [-0.20, +0.60]"
    card = pd.DataFrame(
        [{"task": "t", "domain": "bio", "requests": 10, "agreement": 0.8, "metric": "acc", "regret": 0.2, "regret_ci_low": 0.0, "regret_ci_high": 0.8,
          "p_value": 1.0, "n_paired": 5}]
    )  # fmt: skip
    assert scorecard_display(card).iloc[0][REGRET_COLUMN] == "+0.20 [+0.00, +0.80]"  # half-width 0.4: two digits, 0.40 -> 2 places


def test_fidelity_display_by_hand():
    row = {
        "candidate": "copy-q4", "parent": "parent", "task": "t", "n_paired": 6, "verdict_text": "cannot tell with 6 items",
        "recovery": 0.75, "recovery_ci_low": 0.5, "recovery_ci_high": 1.0, "same_top": 0.8333, "same_top_ci_low": 0.4365, "same_top_ci_high": 0.9699,
        "delta": -0.1667, "delta_low": -0.5, "delta_high": 0.0, "flips_correct_to_wrong": 2, "flips_wrong_to_correct": 1,
        "kl_mean": 0.012345, "ppl_ratio": 1.02345,
    }  # fmt: skip
    shown = fidelity_display(pd.DataFrame([row])).iloc[0]
    assert shown["copy"] == "copy-q4" and shown["verdict"] == "cannot tell with 6 items"
    # half-width 0.25 -> 2 places; recovery and same top stay in the detail table
    assert shown["copy - parent [95%]"] == "-0.17 [-0.50, +0.00]" and shown["flips c→w / w→c"] == "2 / 1" and shown["KL mean"] == "0.012"
    assert "recovery [95%]" not in shown.index

"""Single-stream latency's uncertainty, hand-computed: order-statistic intervals, win rates, and ranks.

The probe measures a handful of prompts per task; a ranking that weighs latency must not turn a
p50 a few milliseconds lower, inside the spread of the measurements, into a sure rank difference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medmoe_lm_eval.analysis.latency import figure_intervals, order_interval
from medmoe_lm_eval.analysis.rank_intervals import figure_win_rates
from medmoe_lm_eval.analysis.ranking import rank_use_case
from medmoe_lm_eval.analysis.use_cases import UseCase
from medmoe_lm_eval.profiling.task_efficiency import task_efficiency


def test_interval_is_the_order_statistics_and_says_its_level():
    # six measurements: [X(1), X(6)] covers the median with 1 - 2/64; nine: [X(2), X(8)] with 1 - 2 * 10/512
    assert order_interval((30.0, 10.0, 20.0, 60.0, 50.0, 40.0)) == (10.0, 60.0, pytest.approx(1 - 2 / 64))
    assert order_interval(tuple(float(v) for v in range(1, 10))) == (2.0, 8.0, pytest.approx(1 - 20 / 512))
    low, high, level = order_interval((1.0, 2.0, 3.0, 4.0))  # four: [min, max] at its true level, 87.5%
    assert (low, high, level) == (1.0, 4.0, 0.875)
    assert all(math.isnan(v) for v in order_interval(None))


def test_candidate_intervals_average_its_tasks_like_the_table_does():
    best = pd.DataFrame(
        {
            "candidate": ["a", "a", "b", "c"],
            "latency_ms_p50": [35.0, 350.0, np.nan, 20.0],
            "latency_samples_ms": [(10.0, 20.0, 30.0, 40.0, 50.0, 60.0), (100.0, 200.0, 300.0, 400.0, 500.0, 600.0), None, None],
        }
    )
    got = figure_intervals(best, ["a", "b", "c"], "latency_ms")
    # a: mean of [10, 60] and [100, 600] -> [55, 330], level 1 - 2/64; b unmeasured; c has a p50 without measurements: no interval
    assert (got.low[0], got.high[0], got.level[0]) == (55.0, 330.0, pytest.approx(1 - 2 / 64))
    assert np.isnan(got.low[1:]).all() and np.isnan(got.high[1:]).all()


def test_figure_win_rates_per_draw_hand_computed():
    values = np.array([[100.0, 200.0, np.nan], [300.0, 200.0, 50.0]])
    # lower is better; draw 1: 100 beats both, 200 beats the unmeasured one; draw 2: 50 < 200 < 300
    assert figure_win_rates(values, higher_is_better=False).tolist() == [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]
    assert figure_win_rates(np.array([[5.0, 5.0]]), higher_is_better=False).tolist() == [[0.5, 0.5]]  # a tie: half
    assert figure_win_rates(np.array([[7.0]]), higher_is_better=True).tolist() == [[1.0]]


def _frame(latencies: dict[str, tuple[float, ...]]) -> pd.DataFrame:
    """Candidates equal on one task's accuracy, differing in single-stream latency measurements only."""
    rows = []
    for cand, samples in latencies.items():
        rows.append({
            "candidate": cand, "task": "t1", "domain": "biomedical", "metric": "acc", "filter": "none", "value": 0.5, "higher_is_better": True,
            "is_group": False, "kind": "full", "n_choices": 4.0, "latency_ms_p50": float(np.median(samples)), "latency_samples_ms": samples,
            "peak_memory_bytes": np.nan, "energy_per_correct_j": np.nan, "generated_tokens_per_s": np.nan,
            "requests_per_s": np.nan, "num_parameters": np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


LATENCY_CASE = UseCase(slug="fast", name="Latency only", weights={"accuracy": 0.5, "latency": 0.5}, limits=[])


def test_latency_a_few_ms_apart_inside_the_spread_is_a_tie_not_a_rank_difference():
    # p50s 115 vs 117.5 ms from four measurements each; intervals [90, 140] and [95, 150] overlap: a tie,
    # so with equal accuracy both score 0.5 x 0.5 + 0.5 x 0.5 = 0.5 and share rank 1
    table = rank_use_case(_frame({"A": (90.0, 100.0, 130.0, 140.0), "B": (95.0, 110.0, 125.0, 150.0)}), LATENCY_CASE).table.set_index("candidate")
    assert table.loc["A", "score"] == table.loc["B", "score"] == 0.5
    assert table.loc["A", "rank"] == table.loc["B", "rank"] == 1 and bool(table.loc["B", "tied_with_leader"])
    assert (table.loc["A", "latency_ms_low"], table.loc["A", "latency_ms_high"]) == (90.0, 140.0)


def test_latency_far_apart_is_a_rank_difference():
    table = rank_use_case(_frame({"A": (10.0, 11.0, 12.0, 13.0), "B": (100.0, 101.0, 102.0, 103.0)}), LATENCY_CASE).table.set_index("candidate")
    assert (table.loc["A", "rank_low"], table.loc["A", "rank_high"]) == (1, 1)
    assert (table.loc["B", "rank_low"], table.loc["B", "rank_high"]) == (2, 2) and not table.loc["B", "tied_with_leader"]
    # four values 10..13: [min, max] = [10, 13] (an 87.5% interval); the table's figure is the p50 11.5
    assert (table.loc["A", "latency_ms_low"], table.loc["A", "latency_ms_high"], table.loc["A", "latency_ms_level"]) == (10.0, 13.0, 0.875)


def test_single_timings_have_no_interval_and_tie_inside_the_relative_tolerance():
    # one measurement per task bounds nothing ([x, x] covers the median with probability 0): no interval,
    # so the ranking falls back to latency's 25% tolerance. 494 vs 628 ms: |diff| 134 <= 0.25 x 628 = 157, a tie;
    # 100 vs 628 ms: 528 > 157, A wins.
    assert all(math.isnan(v) for v in order_interval((494.0,)))
    close = rank_use_case(_frame({"A": (494.0,), "B": (628.0,)}), LATENCY_CASE).table.set_index("candidate")
    assert close.loc["A", "score"] == close.loc["B", "score"] == 0.5 and close.loc["A", "rank"] == close.loc["B", "rank"] == 1
    assert np.isnan(close.loc["A", "latency_ms_low"]) and np.isnan(close.loc["A", "latency_ms_high"])
    apart = rank_use_case(_frame({"A": (100.0,), "B": (628.0,)}), LATENCY_CASE).table.set_index("candidate")
    # A: 0.5 x 0.5 (accuracy tie) + 0.5 x 1 = 0.75; B: 0.25
    assert (apart.loc["A", "score"], apart.loc["B", "score"]) == (0.75, 0.25)


def test_profile_measurements_reach_the_frame_and_hostile_ones_do_not():
    stream = {"streamed": True, "e2e_ms": {"p50": 2.0}, "ttft_ms": {"p50": 1.0}, "e2e_samples_ms": [1.0, 2.0, 3.0], "ttft_samples_ms": [1, 1.0]}
    figures = task_efficiency({"single_stream": {"t": stream}}, "t", 3)
    assert figures["latency_samples_ms"] == (1.0, 2.0, 3.0) and figures["ttft_samples_ms"] == (1.0, 1.0)
    for bad in (["1.0", 2.0], [float("nan")], [-1.0], "123", [True, 1.0], [1.0] * 1001, []):
        hostile = {"single_stream": {"t": {**stream, "e2e_samples_ms": bad}}}
        assert task_efficiency(hostile, "t", 3)["latency_samples_ms"] is None, bad


def test_compare_names_a_faster_candidate_only_outside_the_interval():
    from medmoe_lm_eval.analysis.views import compare_candidates

    def lat(frame: pd.DataFrame) -> pd.Series:
        table = compare_candidates(frame, "A", "B")
        return table[table["metric"] == "latency_ms_p50"].iloc[0]

    overlapping = lat(_frame({"A": (90.0, 100.0, 130.0, 140.0), "B": (95.0, 110.0, 125.0, 150.0)}))
    assert overlapping["ci_low"] < 0 < overlapping["ci_high"] and overlapping["better"] == "no significant difference"
    apart = lat(_frame({"A": (10.0, 11.0, 12.0, 13.0), "B": (100.0, 101.0, 102.0, 103.0)}))
    # redrawn medians lie in [10, 13] and [100, 103]: B - A within [87, 93]
    assert 87.0 <= apart["ci_low"] <= apart["ci_high"] <= 93.0 and apart["better"] == "A"


def test_rank_table_and_json_show_latency_with_its_interval():
    from medmoe_lm_eval.analysis.views import ranking_display, ranking_json

    ranking = rank_use_case(_frame({"A": (10.0, 11.0, 12.0, 13.0), "B": (100.0, 101.0, 102.0, 103.0)}), LATENCY_CASE)
    table = ranking_display(ranking).set_index("candidate")
    low, high = ranking.table.set_index("candidate").loc["A", ["latency_ms_low", "latency_ms_high"]]
    assert table.loc["A", "single-stream latency p50"] == f"11.5 ms [{low:.1f}–{high:.1f}] (87.5% interval)"  # four probes: its true level
    (a, _) = ranking_json(ranking)["candidates"]
    assert a["latency_ms"] == {"p50": 11.5, "ci_low": pytest.approx(low), "ci_high": pytest.approx(high), "level": 0.875}

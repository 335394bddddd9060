"""Ranking with hand-computed answers: win rates, weights, limits, ties, intervals, coverage, Pareto."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medmoe_lm_eval.analysis.ranking import figure_win_rate, main_metric_rows, pareto_front, rank_use_case, win_rates
from medmoe_lm_eval.analysis.use_cases import Limit, UseCase, load_use_cases
from medmoe_lm_eval.benchmarks.metric_directions import direction


def _row(candidate: str, task: str = "t1", value: float = 0.5, **extra) -> dict:
    base = {
        "candidate": candidate, "task": task, "domain": "biomedical", "metric": "acc", "filter": "none",
        "value": value, "is_group": False, "kind": "full", "latency_ms_p50": np.nan, "peak_memory_bytes": np.nan,
        "energy_per_correct_j": np.nan, "generated_tokens_per_s": np.nan, "requests_per_s": np.nan,
        "num_parameters": np.nan, "n_choices": 4.0,
    }  # fmt: skip
    base.update(extra)
    return base


@pytest.fixture
def three() -> pd.DataFrame:
    """A, B, C on one task; C is big and slow."""
    return pd.DataFrame(
        [
            _row("A", value=0.8, latency_ms_p50=100.0, peak_memory_bytes=4e9),
            _row("B", value=0.6, latency_ms_p50=50.0, peak_memory_bytes=2e9),
            _row("C", value=0.4, latency_ms_p50=300.0, peak_memory_bytes=10e9),
        ]
    )


def _case(weights: dict, limits=(), **kw) -> UseCase:
    return UseCase(slug="t", name="Test case", weights=weights, limits=list(limits), **kw)


def test_figure_win_rates_both_directions_and_edge_cases():
    s = pd.Series([10.0, 20.0, 30.0, np.nan])
    assert figure_win_rate(s, True).tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 0.0])  # missing: below all
    assert figure_win_rate(s, False).tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert figure_win_rate(pd.Series([7.0, 7.0]), False).tolist() == [0.5, 0.5]  # a tie: half credit each
    with_inf = figure_win_rate(pd.Series([1.0, 3.0, np.inf]), False)  # no correct answer: infinite J/correct
    assert with_inf.tolist() == [1.0, 0.5, 0.0]


def test_weighted_score_and_hard_limit_hand_computed(three):
    # C fails the memory limit: win rates among A and B only (C shifts nobody's score):
    # acc A 1, B 0; latency (lower; 50 vs 100 ms, outside 25%) B 1, A 0; memory (2 vs 4 GB, outside 10%) B 1, A 0
    case = _case({"accuracy": 0.6, "latency": 0.2, "memory": 0.2}, ["memory <= 8 GB"])
    table = rank_use_case(three, case).table.set_index("candidate")
    assert table.loc["A", "score"] == pytest.approx(0.6)
    assert table.loc["B", "score"] == pytest.approx(0.2 + 0.2)
    assert math.isnan(table.loc["C", "score"])
    assert table.loc["A", "rank"] == 1 and table.loc["B", "rank"] == 2
    assert (table.loc["A", "rank_low"], table.loc["A", "rank_high"]) == (1, 1)  # no stderr, no items: fixed
    assert not table.loc["C", "meets_limits"] and math.isnan(table.loc["C", "rank"])
    assert "fails peak memory ≤ 8.00 GB (10.00 GB)" in table.loc["C", "why"]
    assert table.loc["C", "excluded_reason"] == "fails peak memory ≤ 8.00 GB (10.00 GB)" and table.loc["A", "excluded_reason"] is None
    assert table.loc["A", "why"].startswith("meets peak memory ≤ 8.00 GB (4.00 GB)")
    assert "carried by accuracy (0.60 of 0.60)" in table.loc["A", "why"]
    assert "carried by single-stream latency p50 (0.20 of 0.40)" in table.loc["B", "why"]
    assert "not scored" in table.loc["C", "why"]
    assert list(rank_use_case(three, case).table["candidate"]) == ["A", "B", "C"]  # eligible first


def test_weights_are_relative(three):
    a = rank_use_case(three, _case({"accuracy": 1, "latency": 1})).table.set_index("candidate")["score"]
    b = rank_use_case(three, _case({"accuracy": 5, "latency": 5})).table.set_index("candidate")["score"]
    pd.testing.assert_series_equal(a, b)
    assert a["A"] == pytest.approx((1.0 + 0.5) / 2)


def test_a_gap_inside_the_noise_is_a_tie_not_a_rank_difference():
    """About 0.22 vs 0.225 on 200 questions: min-max scaling made that 0 vs 1; the intervals overlap."""
    rng = np.random.default_rng(11)
    a = (rng.uniform(size=200) < 0.22).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[0]] = 1.0  # one question more right
    items = pd.DataFrame(
        [{"candidate": c, "run_id": c, "task": "t1", "doc_id": i, "doc_hash": f"h{i}", "metric": "acc", "score": s, "n_choices": 4.0, "option_ll": None}
         for c, col in (("A", a), ("B", b)) for i, s in enumerate(col)]
    )  # fmt: skip
    frame = pd.DataFrame([_row("A", value=a.mean(), n_choices=4.0), _row("B", value=b.mean(), n_choices=4.0)])
    table = rank_use_case(frame, _case({"accuracy": 1}), items=items).table.set_index("candidate")
    assert table.loc["B", "rank"] == table.loc["A", "rank"] == 1  # not told apart: one rank number
    assert list(rank_use_case(frame, _case({"accuracy": 1}), items=items).table["candidate"]) == ["B", "A"]  # listed by score
    assert (table.loc["A", "rank_low"], table.loc["A", "rank_high"]) == (1, 2)
    assert table.loc["A", "tied_with_leader"] and table.loc["B", "tied_with_leader"]
    assert table.loc["A", "n_items"] == 200


def test_ties_share_a_rank():
    frame = pd.DataFrame([_row("X", value=0.7), _row("Y", value=0.7), _row("Z", value=0.2)])
    table = rank_use_case(frame, _case({"accuracy": 1})).table.set_index("candidate")
    assert table.loc["X", "rank"] == table.loc["Y", "rank"] == 1
    assert table.loc["Z", "rank"] == 3


def test_no_candidate_meets_the_limits_is_said_plainly(three):
    ranking = rank_use_case(three, _case({"accuracy": 1}, ["accuracy >= 0.95"]))
    assert ranking.eligible.empty
    assert ranking.message.startswith("No candidate meets every limit of Test case (accuracy ≥ 0.950 on every task)")
    assert ranking.table["rank"].isna().all()


def test_missing_figure_counts_as_worst_and_fails_its_limit(three):
    frame = pd.concat([three, pd.DataFrame([_row("Plain", value=0.9)])], ignore_index=True)
    table = rank_use_case(frame, _case({"accuracy": 0.5, "latency": 0.5}, ["latency <= 1 s"])).table.set_index("candidate")
    # Plain fails the latency limit (not measured): listed, not scored, not ranked
    assert math.isnan(table.loc["Plain", "score"]) and math.isnan(table.loc["Plain", "rank"])
    assert not table.loc["Plain", "meets_limits"]
    assert "single-stream latency p50 ≤ 1.00 s (not measured)" in table.loc["Plain", "why"]
    assert "no single-stream latency p50 measured (counted as worst)" in table.loc["Plain", "why"]


def test_a_figure_nobody_measured_is_left_out_and_said_once(three):
    # energy is NaN for all three: the score is accuracy and latency alone (weights 0.5 / 0.5)
    ranking = rank_use_case(three, _case({"accuracy": 1, "latency": 1, "energy": 2}))
    table = ranking.table.set_index("candidate")
    assert table.loc["A", "score"] == pytest.approx((1.0 + 0.5) / 2)
    assert ranking.notes == ["energy per request was measured for no candidate here, so its weight (2) is left out"]
    assert "energy" not in table.loc["A", "why"]


def test_domain_scope_and_empty_scope():
    frame = pd.DataFrame([_row("A", value=0.9, domain="legal", task="law"), _row("B", value=0.5, task="med")])
    ranking = rank_use_case(frame, _case({"accuracy": 1}, domains=["biomedical"]))
    assert list(ranking.table["candidate"]) == ["B"]
    nothing = rank_use_case(frame, _case({"accuracy": 1}, domains=["code"]))
    assert nothing.table.empty and "No results cover Test case (code)" in nothing.message


def test_main_metric_per_task_never_mixed():
    frame = pd.DataFrame(
        [
            _row("A", task="t1", value=0.6),
            _row("A", task="t1", value=0.9, metric="acc_norm"),  # acc preferred over acc_norm
            _row("A", task="t2", value=40.0, metric="bleu"),  # bleu is 0-100
            _row("A", task="grp", value=0.99, is_group=True),  # groups never count twice
        ]
    )
    best = main_metric_rows(frame).set_index("task")
    assert best.loc["t1", "metric"] == "acc" and best.loc["t2", "accuracy"] == pytest.approx(0.4)
    assert "grp" not in best.index


def test_win_rates_helm_rules():
    table = pd.DataFrame(
        {"x": [3.0, 1.0, 3.0], "y": [1.0, 2.0, np.nan], "z": [5.0, 1.0, 2.0], "w": [1.0, np.nan, np.nan]},
        index=["A", "B", "C"],
    )
    rates = win_rates(table, {"x": True, "y": False, "z": None, "w": True})
    # x: A and C tie (half credit each against the other), beat B -> 0.75; y: A beats B -> 1
    assert rates["A"] == pytest.approx((0.75 + 1.0) / 2)
    assert rates["B"] == pytest.approx(0.0)
    assert rates["C"] == pytest.approx(0.75)  # z has no direction, w fewer than 2 values: skipped


def test_pareto_front_known_set():
    points = pd.DataFrame(
        {"acc": [0.9, 0.8, 0.7, 0.9, 0.5, 0.8, np.nan], "lat": [100, 50, 60, 120, 10, 50, 1]},
        index=["P1", "P2", "P3", "P4", "P5", "P2copy", "nan"],
    )
    front = pareto_front(points, maximize=["acc"], minimize=["lat"])
    assert sorted(front[front].index) == ["P1", "P2", "P2copy", "P5"]


@pytest.mark.parametrize(
    ("text", "figure", "op", "value"),
    [
        ("memory <= 8 GB", "memory", "<=", 8e9),
        ("peak_memory<=8GiB", "memory", "<=", 8 * 2**30),
        ("latency <= 1.5 s", "latency", "<=", 1500.0),
        ("accuracy >= 50%", "accuracy", ">=", 0.5),
        ("energy ≤ 2 kJ", "energy", "<=", 2000.0),
        ("parameters <= 7B", "parameters", "<=", 7e9),
    ],
)
def test_limit_parsing_units(text, figure, op, value):
    limit = Limit.parse(text)
    assert (limit.figure, limit.op) == (figure, op) and limit.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "needle"), [("memory <= 8 ms", "unit 'ms' does not fit memory"), ("speed >= 3", "unknown figure 'speed'"), ("memory is small", "is not '<figure>")]
)
def test_limit_errors_are_one_line(text, needle):
    with pytest.raises(ValueError, match=needle):
        Limit.parse(text)


def test_bundled_use_cases_load():
    cases, problems = load_use_cases()
    assert problems == []
    assert list(cases) == ["chatbot", "diagnosis", "edge", "research"]
    assert cases["edge"].limits[0].value == 8e9
    assert cases["chatbot"].name == "Low-latency medical chatbot"


def test_bad_use_case_entries_are_skipped_not_raised(tmp_path):
    path = tmp_path / "uc.yaml"
    path.write_text(
        "use_cases:\n"
        "  good: {name: Good, weights: {accuracy: 1}}\n"
        "  badunit: {name: Bad, weights: {accuracy: 1}, limits: ['memory <= 3 parsecs']}\n"
        "  badweight: {name: Bad, weights: {speed: 1}}\n"
        "  notamap: 3\n"
    )
    cases, problems = load_use_cases(path)
    assert list(cases) == ["good"]
    assert len(problems) == 3 and all("skipped" in p for p in problems)
    broken = tmp_path / "broken.yaml"
    broken.write_text("use_cases: [unclosed\n")
    assert load_use_cases(broken)[0] == {} and "cannot read use cases" in load_use_cases(broken)[1][0]


def test_direction_table_wins_over_run_hint():
    assert direction("acc", False) is True
    assert direction("perplexity") is False
    assert direction("mystery", True) is True and direction("mystery") is None

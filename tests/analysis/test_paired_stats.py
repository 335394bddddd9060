"""Paired statistics and rank intervals against hand computations, then on real lm-eval runs.

Every expected number here is computed in the test from first principles (binomial sums, sign-flip
enumeration, Holm's step-down by hand), never by the code under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from medmoe_lm_eval.analysis.coverage import choose_coverage
from medmoe_lm_eval.analysis.paired import bootstrap_interval, holm, mcnemar_exact, paired_difference, permutation_p
from medmoe_lm_eval.analysis.quality import chance_correct, main_metric_rows
from medmoe_lm_eval.analysis.rank_intervals import win_rate_scores
from medmoe_lm_eval.analysis.ranking import figure_win_rate, rank_use_case
from medmoe_lm_eval.analysis.use_cases import UseCase


def _outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, dtype=float), np.array(b, dtype=float)


def test_exact_mcnemar_matches_the_binomial_sum_by_hand():
    a, b = _outcomes(both=8, only_a=7, only_b=1, neither=4)  # 20 pairs, 8 discordant
    by_hand = 2 * (math.comb(8, 0) + math.comb(8, 1)) / 2**8
    assert by_hand == 0.0703125
    assert mcnemar_exact(a, b) == pytest.approx(by_hand, abs=1e-12)
    diff = paired_difference(a, b)
    assert diff.test == "exact McNemar" and diff.n_paired == 20
    assert diff.delta == pytest.approx((1 - 7) / 20) and diff.a == pytest.approx(15 / 20) and diff.b == pytest.approx(9 / 20)
    a2, b2 = _outcomes(both=3, only_a=2, only_b=2, neither=3)  # balanced discordance: p = 1
    assert mcnemar_exact(a2, b2) == 1.0


def _sign_flip_p(d: list[float]) -> float:
    """Two-sided exact paired permutation p by enumerating all 2^n sign patterns."""
    observed = abs(sum(d))
    hits = sum(abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= observed - 1e-12 for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_permutation_test_matches_sign_flip_enumeration():
    x = np.array([0.5, 0.5, 0.5, 0.5])
    y = np.array([1.5, 2.5, 3.5, 4.5])  # differences 1, 2, 3, 4: only all-plus and all-minus reach 10
    assert _sign_flip_p([1, 2, 3, 4]) == 2 / 16
    assert permutation_p(x, y) == pytest.approx(2 / 16)
    x2 = np.array([0.2, 0.9, 0.4, 0.7, 0.1, 0.3])
    y2 = np.array([0.6, 0.8, 0.9, 0.75, 0.5, 0.3])
    assert permutation_p(x2, y2) == pytest.approx(_sign_flip_p(list(y2 - x2)))
    assert paired_difference(x2, y2).test == "paired permutation"


def test_permutation_p_on_one_or_two_pairs_by_hand():
    # one pair: the flips give d and -d, both as extreme: p = 1 (scipy refuses n = 1; the demo's one MedQuAD item hit it)
    assert permutation_p(np.array([0.2]), np.array([0.7])) == 1.0
    one = paired_difference(np.array([0.2]), np.array([0.7]))
    assert one.p_value == 1.0 and math.isnan(one.ci_low) and math.isnan(one.ci_high) and math.isnan(one.se)  # no spread: no interval
    # two pairs, differences 1 and 2: flip means 1.5, 0.5, -0.5, -1.5; |mean| >= 1.5 in 2 of 4
    assert permutation_p(np.array([0.5, 0.5]), np.array([1.5, 2.5])) == pytest.approx(0.5)


def test_identical_scores_are_tied_with_p_one_and_a_zero_interval():
    scores = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    same = paired_difference(scores, scores.copy())
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    rouge = np.array([0.1, 0.5, 0.33, 0.9])
    assert paired_difference(rouge, rouge.copy()).p_value == 1.0
    shifted = bootstrap_interval(rouge, rouge + 0.25)  # every difference 0.25: the interval is that value
    assert shifted == pytest.approx((0.25, 0.25))


def test_bootstrap_interval_agrees_with_the_normal_approximation():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, 400)
    y = np.clip(x + rng.normal(0.05, 0.2, 400), 0, 1)
    d = y - x
    half = 1.959964 * d.std(ddof=1) / math.sqrt(len(d))  # by hand: mean +- z * s / sqrt(n)
    low, high = bootstrap_interval(x, y)
    assert low == pytest.approx(d.mean() - half, abs=0.2 * half)
    assert high == pytest.approx(d.mean() + half, abs=0.2 * half)


def test_holm_step_down_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, max(1 * 0.04, 0.06) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.2, float("nan")])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1])


def test_chance_correction_by_hand():
    assert chance_correct(0.625, 4) == pytest.approx((0.625 - 0.25) / 0.75) == pytest.approx(0.5)
    assert chance_correct(1 / 3, 3) == pytest.approx(0.0)
    assert chance_correct(0.4, float("nan")) == pytest.approx(0.4)  # unknown option count: unchanged
    frame = pd.DataFrame(
        [
            {"candidate": "A", "task": "mc", "metric": "acc", "filter": "none", "value": 0.625, "stderr": 0.075, "is_group": False, "n_choices": 4.0},
            {"candidate": "A", "task": "gen", "metric": "rougeL_f1", "filter": "none", "value": 0.3, "stderr": 0.02, "is_group": False, "n_choices": np.nan},
        ]
    )
    rows = main_metric_rows(frame).set_index("task")
    assert rows.loc["mc", "quality"] == pytest.approx(0.5) and rows.loc["mc", "quality_stderr"] == pytest.approx(0.075 / 0.75)
    assert rows.loc["gen", "quality"] == pytest.approx(0.3)  # ROUGE is never chance-corrected


def test_win_rates_and_ranks_by_hand():
    # two tasks, three candidates: task 1 A > B > C, task 2 B > A = C
    q = np.array([[0.9, 0.1], [0.5, 0.8], [0.2, 0.1]])
    # A: (2/2 + 0.5/2) / 2 = 0.625; B: (1/2 + 2/2) / 2 = 0.75; C: (0 + 0.5/2) / 2 = 0.125
    assert win_rate_scores(q) == pytest.approx([0.625, 0.75, 0.125])
    wr = figure_win_rate(pd.Series([100.0, 50.0, np.nan], index=list("ABC")), higher_is_better=False)
    assert wr.tolist() == [0.5, 1.0, 0.0]  # lower latency wins; an unmeasured figure ranks last


def _row(candidate: str, task: str, value: float, **extra) -> dict:
    base = {"candidate": candidate, "task": task, "domain": "biomedical", "metric": "acc", "filter": "none", "value": value, "stderr": np.nan,
            "is_group": False, "kind": "full", "latency_ms_p50": np.nan, "peak_memory_bytes": np.nan, "energy_per_correct_j": np.nan,
            "generated_tokens_per_s": np.nan, "requests_per_s": np.nan, "num_parameters": np.nan, "n_choices": 4.0}  # fmt: skip
    return base | extra


def test_disjoint_task_sets_are_not_ranked_against_each_other():
    frame = pd.DataFrame([_row("A", "t1", 0.9), _row("B", "t2", 0.2), _row("C", "t1", 0.4)])
    cov = choose_coverage({"A": {"t1"}, "B": {"t2"}, "C": {"t1"}})
    assert cov.tasks == ("t1",) and cov.ranked == ("A", "C") and "did not run t1" in cov.excluded["B"]
    ranking = rank_use_case(frame, UseCase(slug="t", name="T", weights={"accuracy": 1}), n_boot=50)
    table = ranking.table.set_index("candidate")
    assert math.isnan(table.loc["B", "rank"]) and table.loc["B", "excluded_reason"].startswith("did not run t1")
    assert table.loc["A", "rank"] == 1 and table.loc["C", "rank"] == 2 and table.loc["A", "excluded_reason"] is None
    assert "not counted (not run by every ranked candidate): t2" in ranking.notes
    alone = rank_use_case(pd.DataFrame([_row("A", "t1", 0.9), _row("B", "t2", 0.2)]), UseCase(slug="t", name="T", weights={"accuracy": 1}), n_boot=50)
    assert alone.table["rank"].notna().sum() == 1  # one of the two ranked, the other listed with its reason

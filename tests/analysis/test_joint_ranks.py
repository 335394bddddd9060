"""Joint rank sets (max-t bootstrap) and the latency interval's coverage, by hand and by simulation.

Simulation figures (the issue's checks): 20 candidates with the same accuracy, 300 answers each,
200 replicates: the share of replicates where anyone is marked "not tied with the leader" stays at
5% plus simulation error; the order-statistic interval of the median of 6 probe measurements covers
the true median 1 - 2/64 = 96.9% of the time (4 measurements: 87.5%, labelled so).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medmoe_lm_eval.analysis.latency import order_interval, order_statistic_rank
from medmoe_lm_eval.analysis.rank_intervals import N_BOOT, TaskDraws, certain_beats, draw_components, joint_ranks, tied_with_leader, win_rate_scores


def _joint(items: np.ndarray, n_boot: int, seed: int = 1):
    """Accuracy-only use case on one task: score, and joint ranks from the max-t comparisons."""
    n_cand = items.shape[1]
    point = items.mean(axis=0)[:, None]
    reps = draw_components(point, np.full((n_cand, 1), np.nan), [TaskDraws(0, np.arange(n_cand), items)], n_boot, seed)
    sure, _ = certain_beats(point, reps, np.array([True]))
    return win_rate_scores(point), joint_ranks(sure[:, :, 0])


def test_twins_share_rank_one_and_the_weak_one_is_third():
    rng = np.random.default_rng(3)
    strong = (rng.uniform(size=300) < 0.9).astype(float)
    weak = (rng.uniform(size=300) < 0.2).astype(float)
    items = np.column_stack([strong, weak, strong])  # the third is a twin of the first
    s, joint = _joint(items, 300)
    # both strong ones beat the weak one in every draw: 1 + 0 better for them, 1 + 2 for the weak one;
    # range of a twin: [1, 3 - 1] (it is better than the weak one only)
    assert joint.rank.tolist() == [1, 3, 1] and joint.high.tolist() == [2, 3, 2]
    assert tied_with_leader(joint, s).tolist() == [True, False, True]


def test_close_candidates_on_few_items_share_a_rank():
    a = np.array([1] * 52 + [0] * 48, dtype=float)
    b = np.array([1] * 40 + [0] * 12 + [1] * 10 + [0] * 38, dtype=float)  # 0.52 vs 0.50, 22 discordant
    _, joint = _joint(np.column_stack([a, b]), 500)
    assert joint.rank.tolist() == [1, 1] and joint.high.tolist() == [2, 2]


def test_a_fixed_difference_without_spread_is_significant_and_no_difference_is_not():
    point = np.array([[0.75], [0.25], [0.25]])  # aggregates without a stderr: the same in every draw
    sure, critical = certain_beats(point, np.tile(point, (10, 1, 1)), np.array([True]))
    assert math.isinf(critical) and sure[:, :, 0].tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 0.5], [0.0, 0.5, 0.0]]
    joint = joint_ranks(sure[:, :, 0])
    assert joint.rank.tolist() == [1, 2, 2] and joint.high.tolist() == [1, 3, 3]


def test_preference_weighs_sure_wins():
    # 2 candidates: A surely better on accuracy (weight 0.6), B surely better on memory (0.4): A 0.6 > 0.5
    joint = joint_ranks(np.array([[0.0, 0.6], [0.4, 0.0]]))
    assert joint.rank.tolist() == [1, 2]
    even = joint_ranks(np.array([[0.0, 0.5], [0.5, 0.0]]))  # an even split: neither is better
    assert even.rank.tolist() == [1, 1] and even.high.tolist() == [2, 2]


def test_same_accuracy_twenty_candidates_are_jointly_tied_with_the_leader():
    """20 candidates, 300 answers each at accuracy 0.6, 200 replicates x the ranking's 1,000 bootstrap draws."""
    rng = np.random.default_rng(2024)
    n_rep, n_cand, n_items = 200, 20, 300
    flagged = 0
    for _ in range(n_rep):
        items = (rng.uniform(size=(n_items, n_cand)) < 0.6).astype(float)
        s, joint = _joint(items, N_BOOT, int(rng.integers(1 << 30)))
        tied = tied_with_leader(joint, s)
        leader = int(np.argmax(np.round(s, 10)))
        flagged += bool((~np.delete(tied, leader)).any())
    share = flagged / n_rep
    error = 2 * math.sqrt(0.05 * 0.95 / n_rep)  # two binomial standard errors at 5%: 0.031
    print(f"share of replicates with anyone 'not tied with the leader': {share:.3f} (bound 0.05 + {error:.3f})")
    assert share <= 0.05 + error


@pytest.mark.parametrize(
    ("n", "j", "coverage"), [(4, 1, 1 - 2 / 16), (5, 1, 1 - 2 / 32), (6, 1, 1 - 2 / 64), (9, 2, 1 - 2 * 10 / 512), (10, 2, 1 - 2 * 11 / 1024)]
)
def test_order_statistic_rank_by_hand(n, j, coverage):
    # coverage of [X(j), X(n+1-j)] = 1 - 2 P(Bin(n, 1/2) <= j - 1): n = 9, j = 2: 1 - 2 (1 + 9) / 2^9
    assert order_statistic_rank(n) == (j, pytest.approx(coverage))


def test_latency_interval_covers_the_median_as_labelled():
    """Simulated probe measurements (log-normal times, true median 100 ms)."""
    rng = np.random.default_rng(7)
    for n, expected in ((6, 1 - 2 / 64), (4, 1 - 2 / 16)):
        times = 100.0 * np.exp(rng.normal(0.0, 0.3, size=(20_000, n)))
        bounds = np.array([order_interval(tuple(row))[:2] for row in times[:50]])
        j, _ = order_statistic_rank(n)
        ordered = np.sort(times, axis=1)
        assert bounds.tolist() == ordered[:50, [j - 1, n - j]].tolist()  # the function picks these order statistics
        bounds = ordered[:, [j - 1, n - j]]
        covered = float(np.mean((bounds[:, 0] <= 100.0) & (bounds[:, 1] >= 100.0)))
        print(f"n = {n}: coverage {covered:.4f} (exact {expected:.4f})")
        assert covered == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / 20_000))
    assert order_interval((5.0, 1.0, 3.0, 2.0, 4.0, 6.0)) == (1.0, 6.0, pytest.approx(1 - 2 / 64))


def test_ece_is_recomputed_on_each_draws_items():
    # two documents, both at confidence 0.85 (bin 8), one right, one wrong; a draw picks two with replacement:
    # (right, right) 1/4 -> ECE |0.85 - 1| = 0.15; (wrong, wrong) 1/4 -> 0.85; mixed 1/2 -> |1.7 - 1| / 2 = 0.35
    gaps = np.zeros((2, 1, 10))
    gaps[0, 0, 8], gaps[1, 0, 8] = 0.85 - 1.0, 0.85 - 0.0
    draw = TaskDraws(0, np.array([0]), np.array([[1.0], [0.0]]), gaps)
    reps = draw_components(np.array([[0.5]]), np.array([[np.nan]]), [draw], 8000, ece_point=np.array([0.35]))
    ece = np.round(reps[:, 0, 1], 9)
    share = {v: float(np.mean(ece == v)) for v in (0.15, 0.35, 0.85)}
    assert share == pytest.approx({0.15: 0.25, 0.35: 0.5, 0.85: 0.25}, abs=0.02)
    assert set(np.unique(ece)) == {0.15, 0.35, 0.85}


def test_rank_bootstrap_draws_whole_clusters_when_the_task_names_them():
    """Two clusters of 50 identical items (all right, all wrong): drawing whole clusters, a replicate's
    mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4 (two draws from two clusters, by hand);
    drawing items one by one it is almost never one of those three."""
    from medmoe_lm_eval.analysis.rank_intervals import TaskDraws, resample

    scores = np.r_[np.ones(50), np.zeros(50)][:, None]
    clusters = np.r_[np.zeros(50, dtype=int), np.ones(50, dtype=int)]
    point, stderr = np.array([[0.5]]), np.array([[np.nan]])
    clustered = np.concatenate([d.quality[:, 0, 0] for d in resample(point, stderr, [TaskDraws(0, np.array([0]), scores, None, clusters)], 4000)])
    values, counts = np.unique(np.round(clustered, 12), return_counts=True)
    assert list(values) == [0.0, 0.5, 1.0]
    assert np.allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.03)
    items = np.concatenate([d.quality[:, 0, 0] for d in resample(point, stderr, [TaskDraws(0, np.array([0]), scores)], 4000)])
    assert np.isin(np.round(items, 12), [0.0, 1.0]).mean() == 0.0
    assert 0.03 < items.std() < 0.07  # sqrt(0.25 / 100) = 0.05, against 0.354 for the clusters

"""Power, sample size, MDE, clustered errors and non-inferiority against hand computations.

The quantiles used below, from a normal table: z_{0.975} = 1.959964, z_{0.80} = 0.841621, so
z_{0.975} + z_{0.80} = 2.801585 and k = 2.801585^2 = 7.848879.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medmoe_lm_eval.analysis.clusters import cluster_bootstrap_interval, cluster_weights, clustered_se, n_clusters, naive_se, ratio_interval
from medmoe_lm_eval.analysis.noninferiority import matched_interval, n_to_settle, verdict, verdict_text
from medmoe_lm_eval.analysis.paired import paired_difference
from medmoe_lm_eval.analysis.power import mde_binary, mde_from_se, paired_n, power_binary, power_note, unpaired_n, z_total
from medmoe_lm_eval.cli import main

K = 7.848879


def test_z_total_is_the_table_values():
    assert z_total() == pytest.approx(1.959964 + 0.841621, abs=1e-6)
    assert z_total() ** 2 == pytest.approx(K, abs=1e-5)


def test_paired_sample_size_by_hand():
    # d = 0.10, delta = 0.02: k (d - delta^2) / delta^2 = 7.848879 x 0.0996 / 0.0004 = 7.848879 x 249 = 1954.37 -> 1,955 items
    assert paired_n(0.02, 0.10) == 1955
    # d = 0.20, delta = 0.05: 7.848879 x (0.20 - 0.0025) / 0.0025 = 7.848879 x 79 = 620.06 -> 621
    assert paired_n(0.05, 0.20) == 621
    assert paired_n(-0.02, 0.10) == 1955  # the sign of the difference does not matter
    with pytest.raises(ValueError, match="discordance"):
        paired_n(0.05, 0.04)  # two candidates cannot differ by 5 points while disagreeing on 4% of items


def test_unpaired_sample_size_by_hand():
    # accuracy 0.5 vs 0.52: 0.5 x 0.5 + 0.52 x 0.48 = 0.25 + 0.2496 = 0.4996; 7.848879 x 0.4996 / 0.0004 = 7.848879 x 1249 = 9803.25 -> 9,804
    assert unpaired_n(0.02, 0.5) == 9804
    # accuracy 0.99 -> other 0.97 (0.99 + 0.02 passes 1): 0.99 x 0.01 + 0.97 x 0.03 = 0.0099 + 0.0291 = 0.039; x k / 0.0004 = 765.27 -> 766
    assert unpaired_n(0.02, 0.99) == 766


def test_mde_by_hand():
    # n = 1955, d = 0.10: sqrt(k d / (n + k)) = sqrt(0.7848879 / 1962.848879) = sqrt(0.000399872) = 0.0199968
    assert mde_binary(1955, 0.10) == pytest.approx(0.0199968, abs=1e-6)
    # n = 300, d = 0.30: sqrt(2.3546637 / 307.848879) = sqrt(0.00764876) = 0.0874572
    assert mde_binary(300, 0.30) == pytest.approx(0.0874572, abs=1e-6)
    assert mde_from_se(0.01) == pytest.approx(0.02801585, abs=1e-7)
    # two runs that agree everywhere (d = 0): a true delta needs d >= delta, so the floor k / (n + k) = 7.848879 / 307.848879 = 0.0254960
    assert mde_binary(300, 0.0) == pytest.approx(0.0254960, abs=1e-6)


def test_power_and_the_note_by_hand():
    # n = 300, d = 0.10, delta = 0.02: 0.02 x sqrt(300 / 0.0996) = 0.02 x 54.8821 = 1.097643; minus 1.959964 = -0.862321;
    # Phi(-0.862321) = 0.194254: the difference goes unseen 80.6% of the time
    assert power_binary(0.02, 300, 0.10) == pytest.approx(0.194254, abs=1e-5)
    assert power_note(1 - 0.194254, 300) == "a difference of 2 points would go unseen 81% of the time at n = 300"
    # at the planned n the power is 80%: 0.02 x sqrt(1955 / 0.0996) = 0.02 x 140.1018 = 2.802036, minus 1.959964 = 0.842072 -> Phi = 0.800126
    assert power_binary(0.02, 1955, 0.10) == pytest.approx(0.800126, abs=1e-5)


# -- clustered errors ---------------------------------------------------------------------------


def _copies() -> tuple[np.ndarray, list[str]]:
    """3 clusters of 4 identical items: cluster means 1, 0, 1."""
    values = np.array([1.0] * 4 + [0.0] * 4 + [1.0] * 4)
    return values, ["a"] * 4 + ["b"] * 4 + ["c"] * 4


def test_clustered_se_of_identical_copies_is_the_se_of_the_cluster_means():
    values, labels = _copies()
    # cluster means c = (1, 0, 1), mean 2/3; sum (c - 2/3)^2 = 1/9 + 4/9 + 1/9 = 2/3.
    # SE of the cluster means (plug-in): sqrt((2/3) / 3) / sqrt(3) = sqrt(2/27) = 0.2721655
    assert clustered_se(values, labels) == pytest.approx(math.sqrt(2 / 27), abs=1e-12)
    # naive: 8 ones and 4 zeros, variance 2/9, SE = sqrt((2/9) / 12) = sqrt(1/54) = 0.1360828: the clustered one is sqrt(4) = 2 times it
    assert naive_se(values) == pytest.approx(math.sqrt(1 / 54), abs=1e-12)
    assert clustered_se(values, labels) / naive_se(values) == pytest.approx(2.0, abs=1e-12)
    assert n_clusters(labels, 12) == 3


def test_items_without_a_cluster_are_clusters_of_their_own():
    values, _ = _copies()
    assert clustered_se(values, None) == pytest.approx(naive_se(values), abs=1e-12)
    assert clustered_se(values, [None] * 12) == pytest.approx(naive_se(values), abs=1e-12)
    assert n_clusters(["a", "a", None, ""], 4) == 3


def test_cluster_weights_draw_whole_clusters_and_reduce_to_the_item_bootstrap():
    labels = ["a"] * 3 + ["b"] * 2 + ["c"]
    w = cluster_weights(labels, 6, 200, np.random.default_rng(1))
    assert w.shape == (200, 6) and np.allclose(w.sum(axis=1), 1.0)
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 1] == w[:, 2]) and np.all(w[:, 3] == w[:, 4])  # a cluster moves as one
    item = cluster_weights(None, 6, 50, np.random.default_rng(7))
    assert np.array_equal(item, np.random.default_rng(7).multinomial(6, np.full(6, 1 / 6), size=50) / 6)


def test_cluster_bootstrap_interval_is_wider_than_the_item_one_on_copies():
    a = np.zeros(40)
    b = np.repeat([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0], 4)  # 10 clusters of 4 copies
    labels = np.repeat(np.arange(10), 4)
    low, high = cluster_bootstrap_interval(a, b, labels)
    item_low, item_high = cluster_bootstrap_interval(a, b, None)
    assert low < 0.5 < high and (high - low) > 1.6 * (item_high - item_low)
    # 95% half-width near 1.96 x clustered SE = 1.96 x sqrt(0.25 / 10) = 0.31
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.25 / 10), abs=0.06)
    diff = paired_difference(a, b, clusters=labels)
    assert diff.n_clusters == 10 and (diff.ci_low, diff.ci_high) == (low, high) and diff.se == pytest.approx(math.sqrt(0.025), abs=1e-12)
    assert paired_difference(a, b).n_clusters == 0


def test_ratio_interval_of_a_constant_ratio_is_that_ratio():
    x = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    low, high = ratio_interval(x, x)
    assert (low, high) == (1.0, 1.0)


# -- non-inferiority ----------------------------------------------------------------------------


def test_non_inferiority_verdicts_on_intervals():
    assert verdict(-0.005, 0.02, 0.01) == "non-inferior"  # the whole interval is above -1 point
    assert verdict(-0.06, -0.02, 0.01) == "inferior"  # the whole interval is below -1 point
    assert verdict(-0.03, 0.01, 0.01) == "cannot tell"  # the interval contains -1 point
    assert verdict(-0.01, 0.01, 0.01) == "cannot tell"  # touching the margin is not above it
    assert verdict(math.nan, math.nan, 0.01) == "cannot tell"


def test_items_to_settle_by_hand():
    # observed delta -0.005, margin 0.01, d = 0.10: k (d - delta^2) / (delta + margin)^2 = 7.848879 x 0.099975 / 0.000025
    # = 7.848879 x 3999 = 31387.67 -> 31,388
    assert n_to_settle(-0.005, 300, 0.01, discordance=0.10) == 31388
    # a continuous score, se 0.01 at n = 200, delta -0.02, margin 0.01: 200 x (2.801585 x 0.01 / 0.01)^2 = 200 x 7.848879 = 1569.78 -> 1,570
    assert n_to_settle(-0.02, 200, 0.01, se=0.01) == 1570
    assert n_to_settle(-0.01, 300, 0.01, discordance=0.10) is None  # exactly on the margin: nothing settles it
    assert verdict_text("cannot tell", 300, 31388) == "cannot tell with 300 items (about 31,388 would settle it)"


def test_the_non_inferior_verdict_errs_at_most_5_percent_at_the_margin():
    """Simulation: the true loss is exactly the margin (copy - parent = -0.01: the copy loses a parent-right
    item with probability 0.055 and gains a parent-wrong one with 0.045, discordance 0.10); the verdict must
    say "non-inferior" in at most 5% of runs (its one-sided level is 2.5%). Vectorised over 20,000 runs of
    400 items: the flip counts are multinomial, and the verdict's interval is a closed form of them."""
    reps, n, margin = 20_000, 400, 0.01
    counts = np.random.default_rng(2024).multinomial(n, [0.055, 0.045, 0.90], size=reps)
    low, high = matched_interval(counts[:, 0], counts[:, 1], n)
    verdicts = np.array([verdict(lo, hi, margin) for lo, hi in zip(low, high, strict=True)])
    assert np.mean(verdicts == "non-inferior") <= 0.05
    assert np.mean(verdicts == "inferior") <= 0.05  # nor "inferior": the truth sits on the margin
    # and away from the margin the verdict does come: a copy that never loses more than it gains, on 6,000 items
    fine = np.random.default_rng(7).multinomial(6000, [0.02, 0.02, 0.96], size=2000)
    low, high = matched_interval(fine[:, 0], fine[:, 1], 6000)
    assert np.mean([verdict(lo, hi, margin) == "non-inferior" for lo, hi in zip(low, high, strict=True)]) > 0.9


# -- medmoe plan ----------------------------------------------------------------------------------


def _bundled_count(file: str, **match: str) -> int:
    from medmoe_lm_eval.paths import bundled_data_dir

    rows = [json.loads(line) for line in (bundled_data_dir() / file).read_text(encoding="utf-8").splitlines() if line.strip()]
    return sum(all(r.get(k) == v for k, v in match.items()) for r in rows)


def test_plan_json_on_bundled_data(capsys, monkeypatch):
    monkeypatch.setenv("MEDMOE_DATA", "bundled")
    assert main(["plan", "--tasks", "medmoe_medmcqa,medmoe_mmlu_anatomy", "--delta", "0.02", "--discordance", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in out] == ["medmoe_medmcqa", "medmoe_mmlu_anatomy"]
    assert all(r["n_needed"] == 1955 and r["n_needed_unpaired"] == 9804 and r["data_source"] == "bundled" for r in out)
    assert out[0]["n_available"] == _bundled_count("medmcqa.jsonl") and out[1]["n_available"] == _bundled_count("mmlu_medical.jsonl", subject="anatomy")
    assert out[0]["enough"] is False


def test_plan_expands_groups_and_knows_the_hub_sizes(capsys, monkeypatch):
    monkeypatch.setenv("MEDMOE_DATA", "hub")
    assert main(["plan", "--tasks", "medmoe_open_medical", "--delta", "0.05", "--json"]) == 0
    out = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(out) == 9 and out["medmoe_medqa"]["n_available"] == 1273 and out["medmoe_pubmedqa"]["n_available"] == 500
    # d = 0.10 (the default), delta = 0.05: 7.848879 x 0.0975 / 0.0025 = 7.848879 x 39 = 306.11 -> 307
    assert {r["n_needed"] for r in out.values()} == {307}
    assert out["medmoe_medmcqa"]["enough"] is True and out["medmoe_mmlu_medical_genetics"]["enough"] is False


def test_plan_refuses_bad_input_in_one_line(capsys):
    assert main(["plan", "--tasks", "medmoe_nope", "--delta", "0.02"]) == 2
    assert "unknown task 'medmoe_nope'" in capsys.readouterr().err
    assert main(["plan", "--tasks", "medmoe_medqa", "--delta", "0.2", "--discordance", "0.1"]) == 2
    assert "discordance" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "--tasks", "medmoe_medqa", "--delta", "two"])


def test_cluster_spec_from_task_metadata():
    from medmoe_lm_eval.store.samples import ClusterSpec

    medquad = ClusterSpec.from_metadata({"cluster_fields": ["source", "qid"], "cluster_cut": "-"})
    assert medquad is not None and medquad.label({"source": "GHR", "qid": "0000106-3"}) == "GHR/0000106"
    assert medquad.label({"qid": "0000106-3"}) is None  # the hub copy has no source: the item is its own cluster
    medmcqa = ClusterSpec.from_metadata({"cluster_fields": "subject_name"})
    assert medmcqa is not None and medmcqa.label({"subject_name": "Dental"}) == "Dental" and medmcqa.label({"subject_name": ["x"]}) is None
    for bad in (None, {}, {"cluster_fields": []}, {"cluster_fields": [3]}, {"cluster_fields": "x", "cluster_cut": 5}):
        assert ClusterSpec.from_metadata(bad) is None
    specs = ClusterSpec.per_task({"medmoe_medmcqa": {"metadata": {"cluster_fields": ["subject_name"]}}, "other": {"metadata": {}}})
    assert list(specs) == ["medmoe_medmcqa"]

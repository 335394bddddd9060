"""Calibration (ece, brier_score), selective accuracy and per-subject breakdowns: hand values, then real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from medmoe_lm_eval.analysis.calibration import calibration, selective_accuracy
from medmoe_lm_eval.analysis.ranking import rank_results
from medmoe_lm_eval.analysis.subjects import subject_breakdown
from medmoe_lm_eval.analysis.use_cases import default_use_cases_path, load_use_cases
from medmoe_lm_eval.benchmarks.calibration import brier, expected_calibration_error, mc_process_results
from medmoe_lm_eval.store.results import load_results


def test_ece_is_zero_when_confidence_matches_accuracy():
    # bin 8: ten answers at 0.8 confidence, 8 right; bin 4: five at 0.4, 2 right
    items = [(0.8, 1.0)] * 8 + [(0.8, 0.0)] * 2 + [(0.4, 1.0)] * 2 + [(0.4, 0.0)] * 3
    assert expected_calibration_error(items) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_one_when_always_certain_and_always_wrong():
    assert expected_calibration_error([(1.0, 0.0)] * 7) == 1.0


def test_ece_and_brier_by_hand():
    # bin 9: conf .9, acc .5 -> 2/3 x .4; bin 3: conf .3, acc 0 -> 1/3 x .3; total .266667 + .1
    assert expected_calibration_error([(0.9, 1.0), (0.9, 0.0), (0.3, 0.0)]) == pytest.approx(0.366667, abs=1e-6)
    # a pair with no confidence (every option at -inf, in a file from elsewhere) has no bin: left out
    assert expected_calibration_error([(0.9, 1.0), (math.nan, 1.0), (0.9, 0.0), (0.3, 0.0)]) == pytest.approx(0.366667, abs=1e-6)
    assert brier([0.7, 0.2, 0.1], 0) == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)
    process = mc_process_results(lambda doc: doc["gold"])
    out = process({"gold": 0}, [(math.log(0.7), True), (math.log(0.2), False), (math.log(0.1), False)])
    assert out["acc"] == 1.0 and out["ece"] == pytest.approx((0.7, 1.0)) and out["brier_score"] == pytest.approx(0.14)
    assert process({"gold": 2}, [(math.log(0.7), True), (math.log(0.2), False), (math.log(0.1), False)])["acc"] == 0.0


def test_selective_accuracy_abstains_on_the_least_confident():
    conf, right = [0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0]
    assert selective_accuracy(conf, right, 0.8) == pytest.approx(3 / 4)  # keeps the 4 most confident
    assert selective_accuracy(conf, right, 0.5) == pytest.approx(2 / 3)  # ceil(2.5) = 3
    assert selective_accuracy(conf, right, 1.0) == pytest.approx(3 / 5)


def test_lm_eval_aggregates_ece_and_brier_with_known_answers_scripted_lm():
    """lm-eval itself computes both metrics; a scripted model gives the gold option ll 0 and the
    others -5 (or the reverse), so the option softmax and every figure are known in advance."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    from scripted_lm import ScriptedLM

    from medmoe_lm_eval.paths import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"medmoe_data": "bundled"})
    tasks = ["medmoe_medmcqa", "medmoe_pubmedqa"]
    e5 = math.exp(-5)
    for mode in ("gold", "wrong"):
        out = lm_eval.simple_evaluate(model=ScriptedLM(manager, mode), tasks=tasks, task_manager=manager, limit=8, bootstrap_iters=0)["results"]
        for task, k in (("medmoe_medmcqa", 4), ("medmoe_pubmedqa", 3)):
            if mode == "gold":  # right every time with p = 1 / (1 + (k-1) e^-5)
                p = 1 / (1 + (k - 1) * e5)
                ece, brier_value = 1 - p, (1 - p) ** 2 + (k - 1) * (e5 * p) ** 2
            else:  # k-1 wrong options tie at ll 0: top probability a = 1 / (k - 1 + e^-5), always wrong
                a = 1 / (k - 1 + e5)
                ece, brier_value = a, (k - 1) * a**2 + (1 - e5 * a) ** 2
            assert out[task]["ece,none"] == pytest.approx(ece, abs=1e-9), (mode, task)
            assert out[task]["brier_score,none"] == pytest.approx(brier_value, abs=1e-9), (mode, task)
            assert out[task]["acc,none"] == (1.0 if mode == "gold" else 0.0)


# -- real runs --------------------------------------------------------------------------------


def _lines(root: Path, candidate: str, task: str) -> list[dict]:
    path = next((root / candidate).glob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def _hand_ece(lines: list[dict]) -> float:
    bins: dict[int, list[tuple[float, float]]] = {}
    for row in lines:
        lls = [float(pair[0]) for pair in row["filtered_resps"]]  # lm-eval writes them as strings
        z = sum(math.exp(v) for v in lls)
        conf = max(math.exp(v) / z for v in lls)
        bins.setdefault(min(int(conf * 10), 9), []).append((conf, row["acc"]))
    n = len(lines)
    return sum(len(b) / n * abs(sum(a for _, a in b) / len(b) - sum(c for c, _ in b) / len(b)) for b in bins.values())


def test_ece_and_brier_land_in_the_results_and_match_the_per_item_records(judgement_results):
    results = load_results(judgement_results.root)
    rows = results.frame[(results.frame["candidate"] == "parent") & (results.frame["task"] == "medmoe_medmcqa")].set_index("metric")
    lines = _lines(judgement_results.root, "parent", "medmoe_medmcqa")
    assert rows.at["ece", "value"] == pytest.approx(_hand_ece(lines))
    assert rows.at["brier_score", "value"] == pytest.approx(sum(r["brier_score"] for r in lines) / len(lines))
    assert not bool(rows.at["ece", "higher_is_better"]) and not bool(rows.at["brier_score", "higher_is_better"])
    cal, _ = calibration(results, ["parent", "copy-other"])
    mine = cal[(cal["candidate"] == "parent") & (cal["task"] == "medmoe_medmcqa")].iloc[0]
    assert mine["ece"] == pytest.approx(rows.at["ece", "value"]) and mine["brier_score"] == pytest.approx(rows.at["brier_score", "value"])
    assert mine["n"] == 5 and mine["accuracy"] == pytest.approx(rows.at["acc", "value"])
    assert set(cal["task"]) == {"lbfx_bio", "lbfx_law", "lbfx_code", "medmoe_medmcqa"}  # multiple choice only


def test_subject_breakdown_reads_subjects_from_the_documents(judgement_results):
    results = load_results(judgement_results.root)
    table = subject_breakdown(results, "parent", "copy-same")
    lines = _lines(judgement_results.root, "parent", "medmoe_medmcqa")
    subjects = {r["doc"]["subject_name"] for r in lines}
    assert set(table["task"]) == {"medmoe_medmcqa"} and set(table["subject"]) == subjects
    assert table["n"].sum() == 5 and (table["delta"] == 0).all()
    assert (table["a_low"] <= table["a"]).all() and (table["a"] <= table["a_high"]).all()
    assert list(table["a"]) == sorted(table["a"])  # weakest first


def test_diagnosis_weighs_calibration(judgement_results):
    cases, problems = load_use_cases(default_use_cases_path())
    assert not problems and cases["diagnosis"].weights["calibration"] > 0
    results = load_results(judgement_results.root)
    singles = results.frame[results.frame["candidate"].isin(["parent", "copy-same", "copy-other"])]
    ranking = rank_results(results, cases["diagnosis"], n_boot=50, frame=singles)
    ranked = ranking.table.set_index("candidate")
    assert "ece" in ranked and ranked["ece"].notna().any()


def test_a_subject_only_b_answered_is_left_out_of_where_a_fails():
    from medmoe_lm_eval.analysis.subjects import _subject_rows

    rows = [("A", "X", 0, 1.0), ("A", "X", 1, 0.0), ("B", "X", 0, 1.0), ("B", "X", 1, 1.0), ("B", "Y", 2, 1.0)]
    items = pd.DataFrame([{"candidate": c, "task": "t", "metric": "acc", "subject": s, "doc_id": d, "doc_hash": f"h{d}", "score": v} for c, s, d, v in rows])
    (only,) = _subject_rows(items, "t", "acc", "A", "B")  # Y: A has no score there, so no row (it had n 0 and a NaN mean)
    # Wilson 95% for 1 of 2: centre 0.5, half-width z * sqrt(1/8 + z^2/16) / (1 + z^2/2) = 0.40547
    assert (only["subject"], only["n"], only["a"]) == ("X", 2, 0.5)
    assert (only["a_low"], only["a_high"]) == pytest.approx((0.5 - 0.40547, 0.5 + 0.40547), abs=1e-4)
    assert only["delta"] == pytest.approx(0.5)

"""Rankings that survive an audit, on hand-built results folders whose answers are computed by hand.

Each test writes runs in lm-eval's layout (``audit_fixtures``) with chosen answers per document,
then checks ``medmoe rank`` / ``medmoe compare`` against figures worked out in the comments.
"""

from __future__ import annotations

import json
import math

import pytest
from audit_fixtures import TaskRun, profile, write_run

from medmoe_lm_eval.analysis.comparison import compare
from medmoe_lm_eval.analysis.ranking import rank_results
from medmoe_lm_eval.analysis.use_cases import UseCase, load_use_cases
from medmoe_lm_eval.analysis.views import ranking_json
from medmoe_lm_eval.cli import main
from medmoe_lm_eval.store.results import load_results

N_BOOT = 400


def _case(weights: dict, limits=(), **kw) -> UseCase:
    return UseCase(slug="audit", name="Audit", weights=weights, limits=list(limits), **kw)


def _table(root, case, n_boot: int = N_BOOT):
    ranking = rank_results(load_results(root), case, n_boot=n_boot)
    return ranking, ranking.table.set_index("candidate")


def _ones(first: int, n: int = 300, start: int = 0) -> list[int]:
    """``first`` correct answers starting at document ``start``, the rest wrong."""
    return [1 if start <= i < start + first else 0 for i in range(n)]


# 1. Equal is equal ------------------------------------------------------------------------------


def test_equal_counts_on_other_documents_are_an_equal_score_and_split_the_win(tmp_path):
    # k = 3 (1/3 has no exact float): A right on docs 0-99, B on 200-299, C on 0-49; 300 docs each.
    # Win rates (ties half): A vs B 0.5, A vs C 1 -> A = B = (0.5 + 1) / 2 = 0.75 exactly; C = 0.
    runs = {"A": _ones(100), "B": _ones(100, start=200), "C": _ones(50)}
    for name, correct in runs.items():
        write_run(tmp_path, name, {"t": TaskRun(correct, k=3, choices=["x", "y", "z"])})
    ranking, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert table.loc["A", "score"] == table.loc["B", "score"] == 0.75 and table.loc["C", "score"] == 0.0
    assert table.loc["A", "rank"] == table.loc["B", "rank"] == 1  # a shared rank number
    # the quality shown is chance-corrected once per task: (100/300 - 1/3) / (2/3) = 0
    assert ranking.quality.loc["A", "t"] == pytest.approx(0.0, abs=1e-12) == ranking.quality.loc["B", "t"]


# 2. One correction per task ---------------------------------------------------------------------


def test_one_chance_correction_per_task_and_unknown_k_leaves_the_task_out(tmp_path):
    # task "tmpl": doc_to_choice is a template; A's log says 4 options per document, B kept none
    # (20 documents, acc 0.55): both corrected with k = 4: B (0.55 - 0.25) / 0.75 = 0.4.
    # task "blind": a template and no log anywhere: k unknown -> left out, with the reason.
    a_correct = _ones(12, n=20)  # 0.6 -> (0.6 - 0.25) / 0.75 = 0.4666...
    write_run(tmp_path, "A", {"tmpl": TaskRun(a_correct, choices="{{choices}}"), "blind": TaskRun(None, acc=0.5, n=20, choices="{{choices}}")})
    write_run(tmp_path, "B", {"tmpl": TaskRun(None, acc=0.55, n=20, choices="{{choices}}"), "blind": TaskRun(None, acc=0.4, n=20, choices="{{choices}}")})
    ranking, _ = _table(tmp_path, _case({"accuracy": 1.0}))
    assert ranking.quality.loc["B", "tmpl"] == pytest.approx(0.4) and ranking.quality.loc["A", "tmpl"] == pytest.approx((0.6 - 0.25) / 0.75)
    assert list(ranking.quality.columns) == ["tmpl"]
    assert any(n.startswith("blind left out: number of options unknown") for n in ranking.notes)


def test_a_task_of_one_document_is_left_out_not_read_as_a_win(tmp_path):
    # "one": a single document, A right and B wrong: a difference with no spread, so no evidence;
    # left out with the reason. "t": 30 documents, equal counts (A docs 0-14, B docs 15-29) ->
    # A and B tie on the one task that counts: 0.5 each, a shared rank 1.
    for name, single, many in (("A", [1], _ones(15, n=30)), ("B", [0], _ones(15, n=30, start=15))):
        write_run(tmp_path, name, {"one": TaskRun(single), "t": TaskRun(many)})
    ranking, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert list(ranking.quality.columns) == ["t"]
    assert any(n.startswith("one left out: 1 document in common") for n in ranking.notes), ranking.notes
    assert table.loc["A", "score"] == table.loc["B", "score"] == 0.5 and table.loc["A", "rank"] == table.loc["B", "rank"] == 1
    one = {t.task: t for t in compare(load_results(tmp_path), "A", "B").tasks}["one"]
    assert math.isnan(one.ci_low) and math.isnan(one.ci_high) and one.verdict("A", "B") == "no interval"


def test_when_every_task_is_left_out_the_message_says_nothing_could_rank(tmp_path):
    # the demo's narrowed run: one shared document per task, so no task counts; the candidates are
    # not "failing limits" (this use case has none) and their figures were measured all the same
    for name, single in (("A", [1]), ("B", [0])):
        write_run(tmp_path, name, {"one": TaskRun(single)})
    ranking, table = _table(tmp_path, _case({"accuracy": 1.0, "latency": 0.5}))
    assert ranking.message == "No candidate can be ranked for Audit: no task it counts has enough documents in common (the notes say why)."
    assert table["score"].isna().all()
    assert not any("measured for no candidate" in n for n in ranking.notes), ranking.notes
    assert any(n.startswith("one left out: 1 document in common") for n in ranking.notes), ranking.notes


# 3. Only comparable runs ------------------------------------------------------------------------


def test_other_shots_are_left_out_with_the_reason(tmp_path):
    for name, shots in (("A", 5), ("B", 0), ("C", 0)):
        write_run(tmp_path, name, {"t": TaskRun(_ones(150), shots=shots)})
    _, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert math.isnan(table.loc["A", "score"]) and "5-shot vs 0-shot" in table.loc["A", "excluded_reason"]
    assert table.loc["B", "rank"] == table.loc["C", "rank"] == 1


def test_a_short_run_is_ranked_on_the_common_documents_and_the_drops_are_said(tmp_path):
    # D ran 100 documents (a --limit 100 run), E and F 300: all three ranked on documents 0-99.
    # On them: D right on 0-79 (80), E on 0-59 (60), F on 0-79 (80) -> D and F tie.
    write_run(tmp_path, "D", {"t": TaskRun(_ones(80, n=100), limit=100)})
    write_run(tmp_path, "E", {"t": TaskRun(_ones(60))})
    write_run(tmp_path, "F", {"t": TaskRun(_ones(80))})
    ranking, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert table.loc["D", "n_items"] == table.loc["E", "n_items"] == 100
    assert table.loc["D", "score"] == table.loc["F", "score"] == 0.75  # (0.5 + 1) / 2
    assert "t: 200 of its documents dropped (not answered by every ranked candidate)" in ranking.candidate_notes["E"]
    assert "D" not in ranking.candidate_notes or not any("dropped" in n for n in ranking.candidate_notes["D"])


def test_a_run_without_a_log_that_cannot_be_matched_is_left_out(tmp_path):
    # G kept no per-sample log and scored 300 documents; H (100, a limit) and I (300) are paired
    # on 100: G's average over 300 cannot be matched to them.
    write_run(tmp_path, "G", {"t": TaskRun(None, acc=0.9, n=300)})
    write_run(tmp_path, "H", {"t": TaskRun(_ones(50, n=100), limit=100)})
    write_run(tmp_path, "I", {"t": TaskRun(_ones(40))})
    _, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert math.isnan(table.loc["G", "score"]) and "kept no per-sample log and scored 300" in table.loc["G", "excluded_reason"]


def test_a_run_without_a_log_on_the_same_documents_is_ranked_with_a_note(tmp_path):
    write_run(tmp_path, "J", {"t": TaskRun(None, acc=0.9, stderr=0.02, n=300)})
    write_run(tmp_path, "K", {"t": TaskRun(_ones(30))})
    ranking, table = _table(tmp_path, _case({"accuracy": 1.0}))
    assert table.loc["J", "rank"] == 1 and table.loc["K", "rank"] == 2  # 0.9 vs 0.1, far outside 0.02
    assert "t: no per-sample log; its aggregate is drawn from lm-eval's stderr" in ranking.candidate_notes["J"]


def test_same_doc_id_other_content_is_never_compared_and_said(tmp_path):
    write_run(tmp_path, "L", {"t": TaskRun(_ones(10, n=20))})
    write_run(tmp_path, "M", {"t": TaskRun(_ones(10, n=20), doc_ids=list(range(20)))})
    write_run(tmp_path, "N", {"t": TaskRun(_ones(10, n=10), content="other data", doc_ids=list(range(10)))})
    ranking, _ = _table(tmp_path, _case({"accuracy": 1.0}))
    # N's documents 0-9 are other questions under the same ids: L, M and N share no document
    assert any("10 doc_id(s) carry different documents" in n for n in ranking.notes)


def test_compare_shows_different_rows_and_shots_despite_the_adapter(tmp_path):
    write_run(tmp_path, "A", {"t": TaskRun(_ones(10, n=20)), "s": TaskRun(_ones(5, n=20))})
    write_run(tmp_path, "B", {"t": TaskRun(_ones(10, n=20), content="other rows"), "s": TaskRun(_ones(5, n=20), shots=5)})
    by_task = {t.task: t for t in compare(load_results(tmp_path), "A", "B").tasks}
    assert "different rows" in by_task["t"].note and "adapter" not in by_task["t"].note
    assert "5-shot" in by_task["s"].note


# 4. Holm covers every task ----------------------------------------------------------------------


def test_unpaired_tasks_get_a_normal_p_and_enter_holm(tmp_path):
    # t1: 0.6 (se 0.03) vs 0.5 (se 0.04): delta -0.1, se 0.05, z = 2, p = 2 (1 - Phi(2)) = 0.0455003
    # t2: 0.50 vs 0.52, same se: z = 0.4, p = 0.6891565. Holm: 2 x 0.0455003 = 0.0910005; max(0.689, 0.091)
    write_run(tmp_path, "A", {"t1": TaskRun(None, acc=0.6, stderr=0.03, n=100), "t2": TaskRun(None, acc=0.5, stderr=0.03, n=100)})
    write_run(tmp_path, "B", {"t1": TaskRun(None, acc=0.5, stderr=0.04, n=100), "t2": TaskRun(None, acc=0.52, stderr=0.04, n=100)})
    by_task = {t.task: t for t in compare(load_results(tmp_path), "A", "B").tasks}
    assert by_task["t1"].p_value == pytest.approx(0.0455003, abs=1e-6) and by_task["t1"].p_holm == pytest.approx(0.0910005, abs=1e-6)
    assert by_task["t2"].p_value == pytest.approx(0.6891565, abs=1e-6) and by_task["t2"].p_holm == pytest.approx(0.6891565, abs=1e-6)
    assert by_task["t1"].verdict("A", "B") == "not significant after Holm"  # its interval [-0.198, -0.002] alone would say A


# 6. Noise wins nothing --------------------------------------------------------------------------


RESEARCH = load_use_cases()[0]["research"]


def test_the_same_model_under_two_names_shares_a_rank(tmp_path):
    # the opening example: identical answers on 300 MedMCQA items, 1.62e3 vs 1.42e3 requests/s (14%)
    answers = _ones(170)
    for name, rps in (("twin-a", 1.62e3), ("twin-b", 1.42e3)):
        write_run(tmp_path, name, {"medmoe_medmcqa": TaskRun(answers)}, profile=profile(["medmoe_medmcqa"], requests_per_s=rps))
    ranking, table = _table(tmp_path, RESEARCH)
    assert table.loc["twin-a", "score"] == table.loc["twin-b", "score"] == pytest.approx(0.5)  # every figure a tie: half
    assert table.loc["twin-a", "rank"] == table.loc["twin-b", "rank"] == 1
    assert "requests/s: counted as a tie with twin-b (within 30% of each other)" in ranking.candidate_notes["twin-a"]


def test_a_copy_twice_as_fast_still_wins_throughput(tmp_path):
    answers = _ones(170)
    for name, rps in (("parent", 1.0e3), ("fast-copy", 2.0e3)):
        write_run(tmp_path, name, {"t": TaskRun(answers)}, profile=profile(["t"], requests_per_s=rps))
    _, table = _table(tmp_path, _case({"accuracy": 0.6, "requests_per_s": 0.4}))
    # accuracy tied (0.5 x 0.6 each); throughput 2x: fast-copy 0.4, parent 0 -> 0.7 vs 0.3
    assert table.loc["fast-copy", "score"] == pytest.approx(0.7) and table.loc["parent", "score"] == pytest.approx(0.3)
    assert table.loc["fast-copy", "rank"] == 1 and table.loc["parent", "rank"] == 2


def test_more_accurate_but_slower_inside_the_latency_spread_is_never_ranked_below(tmp_path):
    # A: 0.20 better on 300 items (0.6 vs 0.4) but 3 ms slower; both latency intervals [min, max] of 6 overlap
    write_run(tmp_path, "A", {"t": TaskRun(_ones(180))}, profile=profile(["t"], latency=[100, 101, 103, 104, 105, 108]))
    write_run(tmp_path, "B", {"t": TaskRun(_ones(120))}, profile=profile(["t"], latency=[97, 98, 100, 101, 102, 106]))
    _, table = _table(tmp_path, _case({"accuracy": 0.5, "latency": 0.5}))
    assert table.loc["A", "score"] == pytest.approx(0.75) and table.loc["B", "score"] == pytest.approx(0.25)
    assert table.loc["A", "rank"] <= table.loc["B", "rank"]


def test_a_candidate_outside_a_limit_does_not_shift_the_others(tmp_path):
    def build(root, with_c: bool):
        write_run(root, "A", {"t": TaskRun(_ones(200))}, profile=profile(["t"], memory=2e9))
        write_run(root, "B", {"t": TaskRun(_ones(100))}, profile=profile(["t"], memory=4e9))
        if with_c:  # better than both on accuracy, but over the memory limit
            write_run(root, "C", {"t": TaskRun(_ones(290))}, profile=profile(["t"], memory=20e9))

    case = _case({"accuracy": 0.5, "memory": 0.5}, ["memory <= 8 GB"])
    build(tmp_path / "two", False)
    build(tmp_path / "three", True)
    _, two = _table(tmp_path / "two", case)
    _, three = _table(tmp_path / "three", case)
    assert two.loc["A", "score"] == three.loc["A", "score"] == 1.0 and two.loc["B", "score"] == three.loc["B", "score"] == 0.0
    assert math.isnan(three.loc["C", "score"]) and not three.loc["C", "meets_limits"]


def test_energy_is_weighed_per_request_and_shown_per_correct_answer(tmp_path):
    # A: 30 J over 300 requests = 0.1 J/request, 150 correct -> 0.2 J per correct; B: 60 J -> 0.2 J/request
    write_run(tmp_path, "A", {"t": TaskRun(_ones(150))}, profile=profile(["t"], energy_j=30.0))
    write_run(tmp_path, "B", {"t": TaskRun(_ones(150))}, profile=profile(["t"], energy_j=60.0))
    ranking, table = _table(tmp_path, _case({"accuracy": 0.5, "energy": 0.5}))
    assert table.loc["A", "energy_per_request_j"] == pytest.approx(0.1) and table.loc["A", "energy_per_correct_j"] == pytest.approx(0.2)
    assert table.loc["A", "score"] == pytest.approx(0.75)  # 0.25 (accuracy tie) + 0.5 (half the energy of B)
    from medmoe_lm_eval.analysis.views import ranking_display

    shown = ranking_display(ranking).set_index("candidate")
    assert shown.loc["A", "energy per request"] == "0.1 J" and shown.loc["A", "energy per correct answer"] == "0.2 J"
    assert load_use_cases()[0]["edge"].weights["energy"] > 0  # the bundled cases weigh energy per request


def test_calibration_is_estimated_from_the_items(tmp_path):
    # 4 documents: confidence 0.85 right, 0.85 wrong, 0.35 right, 0.35 wrong
    # ECE = (|0.85 + 0.85 - 1| + |0.35 + 0.35 - 1|) / 4 = (0.7 + 0.3) / 4 = 0.25
    conf = [0.85, 0.85, 0.35, 0.35]
    write_run(tmp_path, "A", {"t": TaskRun([1, 0, 1, 0], confidence=conf)})
    data = json.loads(next((tmp_path / "A").glob("results_*.json")).read_text())
    data["results"]["t"]["ece,none"] = 0.9  # an aggregate that disagrees: the items win
    next((tmp_path / "A").glob("results_*.json")).write_text(json.dumps(data))
    _, table = _table(tmp_path, _case({"accuracy": 0.5, "calibration": 0.5}))
    assert table.loc["A", "ece"] == pytest.approx(0.25)


# 10. Notes travel -------------------------------------------------------------------------------


def test_rank_json_carries_every_note_the_table_shows(tmp_path, capsys):
    write_run(tmp_path, "D", {"t": TaskRun(_ones(80, n=100), limit=100)}, profile=profile(["t"], requests_per_s=100.0))
    write_run(tmp_path, "E", {"t": TaskRun(_ones(60))}, profile=profile(["t"], requests_per_s=110.0))
    write_run(tmp_path, "J", {"t": TaskRun(None, acc=0.9, n=300)})
    cases = tmp_path / "cases.yaml"
    cases.write_text("use_cases:\n  audit:\n    name: Audit\n    weights: {accuracy: 0.6, requests_per_s: 0.4}\n", encoding="utf-8")
    assert main(["rank", "--results", str(tmp_path), "--use-cases", str(cases), "--use-case", "audit"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert main(["rank", "--results", str(tmp_path), "--use-cases", str(cases), "--use-case", "audit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    per = {c["candidate"]: c["notes"] for c in out["candidates"]}
    assert any("dropped" in n for n in per["E"]) and any("tie with E" in n for n in per["D"])
    for name, notes in per.items():
        for note in notes:
            assert " ".join(f"{name}: {note}".split()) in text
    for note in out["notes"]:
        assert " ".join(note.split()) in text
    assert out["use_case"] == "audit" and json.loads(json.dumps(ranking_json(rank_results(load_results(tmp_path), _case({"accuracy": 1.0}), n_boot=50))))

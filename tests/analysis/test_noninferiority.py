"""Recovery, same-top rate and non-inferiority verdicts of a copy, on small fixtures computed by hand,
then on real runs: the parent found by its recorded model, and the CLI's JSON keys.

k = (z_{0.975} + z_{0.80})^2 = (1.959964 + 0.841621)^2 = 7.848879; z_{0.975}^2 = 3.841459.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from medmoe_lm_eval.analysis.fidelity import JSON_KEYS, fidelity, pair_figures, paired_items
from medmoe_lm_eval.cli import main
from medmoe_lm_eval.store.results import load_results

Z2 = 3.841459


def _items(parent: list[float], copy: list[float], clusters: list[str] | None = None) -> pd.DataFrame:
    """Two candidates' 0/1 scores on documents 0..n-1 of task ``t`` (top option = 0 when right, 1 when wrong)."""
    rows = []
    for cand, scores in (("p", parent), ("q", copy)):
        for i, s in enumerate(scores):
            ll = (0.0, -1.0) if s == 1.0 else (-1.0, 0.0)
            label = clusters[i] if clusters else None
            rows.append(
                {
                    "candidate": cand,
                    "task": "t",
                    "doc_id": i,
                    "doc_hash": f"h{i}",
                    "metric": "acc",
                    "score": s,
                    "option_ll": ll,
                    "response": None,
                    "cluster": label,
                }
            )
    return pd.DataFrame(rows)


def _figures(parent: list[float], copy: list[float], margin: float = 0.01, clusters: list[str] | None = None) -> dict:
    return pair_figures(paired_items(_items(parent, copy, clusters), "t", "acc", "p", "q"), margin)


def test_a_perfect_copy_recovers_everything_and_is_non_inferior_given_enough_items():
    parent = [1.0] * 15 + [0.0] * 5
    fig = _figures(parent, parent)
    assert fig["recovery"] == 1.0 and (fig["recovery_ci_low"], fig["recovery_ci_high"]) == (1.0, 1.0)
    # same top answer on 20 of 20: Wilson lower bound at p = 1 is n / (n + z^2) = 20 / 23.841459 = 0.838875
    assert fig["same_top"] == 1.0 and fig["same_top_ci_low"] == pytest.approx(20 / (20 + Z2), abs=1e-5) and fig["same_top_ci_high"] == pytest.approx(1.0)
    assert (fig["delta_low"], fig["delta_high"]) == (0.0, 0.0)  # the bootstrap collapses; the verdict's interval does not:
    # Agresti-Min: cells + 1/2, n* = 22, no flips: se = sqrt(1) / 22 = 0.0454545, half-width 1.959964 x 0.0454545 = 0.0890893
    assert fig["verdict_low"] == pytest.approx(-0.0890893, abs=1e-6) and fig["verdict"] == "cannot tell"
    # to settle: d at least 3/20 = 0.15 (rule of three), delta 0: 7.848879 x 0.15 / 0.01^2 = 11773.32 -> 11,774
    assert fig["n_to_settle"] == 11774
    # 600 identical items: n* = 602, se = 1/602 = 0.00166113, half-width 0.00325576: above -0.01
    big = _figures([1.0] * 450 + [0.0] * 150, [1.0] * 450 + [0.0] * 150)
    assert big["verdict_low"] == pytest.approx(-0.00325576, abs=1e-7) and big["verdict"] == "non-inferior" and big["margin"] == 0.01
    assert big["n_to_settle"] is None and big["verdict_text"] == "non-inferior"


def test_a_copy_that_loses_every_answer_is_inferior():
    fig = _figures([1.0] * 10, [0.0] * 10)
    assert fig["recovery"] == 0.0 and fig["same_top"] == 0.0
    # Agresti-Min: b* = 10.5, c* = 0.5, n* = 12: delta* = -10/12 = -0.833333; se = sqrt(11 - 100/12) / 12 = 1.632993 / 12 = 0.136083;
    # upper bound -0.833333 + 1.959964 x 0.136083 = -0.566617, below -0.01
    assert fig["verdict_high"] == pytest.approx(-0.566617, abs=1e-5)
    assert fig["delta"] == -1.0 and fig["verdict"] == "inferior" and fig["n_to_settle"] is None


def test_a_small_run_cannot_tell_and_says_how_many_items_would():
    # 20 items: the parent is right on 12; the copy loses 2 of them and gains 1 of the 8 others.
    parent = [1.0] * 12 + [0.0] * 8
    copy = [0.0, 0.0] + [1.0] * 10 + [1.0] + [0.0] * 7
    fig = _figures(parent, copy)
    # copy 11/20 vs parent 12/20: recovery 11/12 = 0.916667; discordance 3/20 = 0.15; delta -1/20 = -0.05
    assert fig["recovery"] == pytest.approx(11 / 12) and fig["recovery_ci_low"] < 11 / 12 < fig["recovery_ci_high"]
    # same top answer on 17 of 20 = 0.85; Wilson: (p + z^2/2n -+ z sqrt(p q / n + z^2 / 4n^2)) / (1 + z^2 / n)
    # = (0.85 + 0.0960365 -+ 1.959964 x sqrt(0.006375 + 0.0024009)) / 1.1920729 = (0.9460365 -+ 0.1836091) / 1.1920729
    # = 0.639581 and 0.947631
    assert fig["same_top"] == 0.85
    assert fig["same_top_ci_low"] == pytest.approx(0.639581, abs=1e-5) and fig["same_top_ci_high"] == pytest.approx(0.947631, abs=1e-5)
    assert fig["delta_low"] < -0.01 < fig["delta_high"] and fig["verdict"] == "cannot tell"
    # k (d - delta^2) / (delta + margin)^2 = 7.848879 x (0.15 - 0.0025) / 0.0016 = 7.848879 x 92.1875 = 723.57 -> 724
    assert fig["n_to_settle"] == 724
    assert fig["verdict_text"] == "cannot tell with 20 items (about 724 would settle it)"
    # Agresti-Min: b* = 2.5, c* = 1.5, n* = 22: delta* = -1/22 = -0.0454545; se = sqrt(4 - 1/22) / 22 = 1.988604 / 22 = 0.0903911;
    # interval -0.0454545 -+ 0.1771634 = [-0.2226179, 0.1317089]
    assert (fig["verdict_low"], fig["verdict_high"]) == (pytest.approx(-0.2226179, abs=1e-6), pytest.approx(0.1317089, abs=1e-6))
    assert _figures(parent, copy, margin=0.3)["verdict"] == "non-inferior"  # a looser margin is met


def test_clustered_items_are_resampled_whole():
    parent = [1.0] * 12 + [0.0] * 8
    copy = [0.0, 0.0] + [1.0] * 10 + [1.0] + [0.0] * 7
    clusters = [str(i // 4) for i in range(20)]  # 5 clusters of 4
    fig = _figures(parent, copy, clusters=clusters)
    assert fig["n_clusters"] == 5 and fig["verdict"] == "cannot tell"
    plain = _figures(parent, copy)
    assert fig["n_clusters"] != plain["n_clusters"] == 0


# -- real runs ----------------------------------------------------------------------------------


def test_fidelity_json_has_the_verdict_keys(judgement_results, capsys):
    assert main(["fidelity", "--results", str(judgement_results.root), "--json", "--margin", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out and all(tuple(row) == JSON_KEYS for row in out)
    same = [r for r in out if r["candidate"] == "copy-same" and r["verdict"] is not None]
    assert same and all(r["verdict"] == "non-inferior" and r["recovery"] in (1.0, None) and r["same_top"] in (1.0, None) and r["margin"] == 0.5 for r in same)
    assert {r["verdict"] for r in out if r["candidate"] == "copy-other"} <= {"non-inferior", "inferior", "cannot tell"}
    with pytest.raises(SystemExit):
        main(["fidelity", "--results", str(judgement_results.root), "--margin", "two"])


def test_a_copy_whose_recorded_parent_name_is_absent_pairs_by_parent_model(judgement_results, tmp_path):
    """``medmoe quantize --model DIR`` without ``--parent`` records DIR's name; the board's full-precision
    candidate is called otherwise, so the copy is paired with the candidate whose one expert runs DIR."""
    for name in ("parent", "copy-same"):
        shutil.copytree(judgement_results.root / name, tmp_path / name)
    parent_data = json.loads(next((tmp_path / "parent").glob("results_*.json")).read_text())
    parent_model = parent_data["config"]["medmoe"]["adapter"]["experts"][0]["model"]
    path = next((tmp_path / "copy-same").glob("results_*.json"))
    data = json.loads(path.read_text())
    data["config"]["medmoe"]["adapter"].update(parent="folder-name", parent_model=parent_model + "/")
    path.write_text(json.dumps(data))
    rows, notes = fidelity(load_results(tmp_path))
    assert rows and {r.parent for r in rows} == {"parent"} and not [n for n in notes if "has no runs" in n]
    data["config"]["medmoe"]["adapter"]["parent_model"] = "/elsewhere/model"
    path.write_text(json.dumps(data))
    rows, notes = fidelity(load_results(tmp_path))
    assert rows == [] and notes == ["copy-same: parent 'folder-name' has no runs on this board"]


def test_simulated_copies_show_numpy_types_nowhere(judgement_results, capsys):
    """JSON from the CLI is plain: numbers or null, verdicts among the three words."""
    assert main(["fidelity", "--results", str(judgement_results.root), "--json"]) == 0
    for row in json.loads(capsys.readouterr().out):
        assert row["verdict"] in (None, "non-inferior", "inferior", "cannot tell")
        assert row["n_to_settle"] is None or (isinstance(row["n_to_settle"], int) and row["n_to_settle"] > row["n_paired"])
        assert all(v is None or isinstance(v, (int, float, str)) for v in row.values())
        assert not any(isinstance(v, float) and np.isnan(v) for v in row.values())


def _app(monkeypatch, folder):
    from streamlit.testing.v1 import AppTest

    from medmoe_lm_eval.paths import leaderboard_dir

    monkeypatch.setenv("MEDMOE_RESULTS", str(folder))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    return AppTest.from_file(str(leaderboard_dir() / "app.py"), default_timeout=60).run()


def _table(at, column: str) -> pd.DataFrame:
    matches = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(matches) == 1, f"{len(matches)} tables with column {column!r}"
    return matches[0]


def test_pages_show_verdicts_and_the_mde(monkeypatch, judgement_results):
    at = _app(monkeypatch, judgement_results.root)
    at.switch_page("pages/fidelity.py").run()
    assert not at.exception and not at.error
    table = _table(at, "verdict_text")
    same = table[(table["candidate"] == "copy-same") & table["recovery"].notna()]
    # 5 identical answers do not show a loss below one point: Agresti-Min half-width 1.959964 / 7 = 0.28
    assert not same.empty and same["verdict_text"].str.startswith("cannot tell with 5 items").all() and (same["recovery"] == 1.0).all()
    at.number_input(key="fidelity_margin").set_value(0.5).run()  # at a margin of 50 points they do
    table = _table(at, "verdict_text")
    same = table[(table["candidate"] == "copy-same") & table["recovery"].notna()]
    assert (same["verdict_text"] == "non-inferior").all()
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="compare_a").set_value("parent").run()
    at.selectbox(key="compare_b").set_value("copy-same").run()
    assert not at.exception and not at.error
    rows = _table(at, "mde").set_index("task")
    assert (rows["verdict"] == "no significant difference").all() and rows["mde"].notna().all()
    assert any("MDE" in c.value for c in at.caption)  # the table's MDE column sits beside the verdict, and the caption says what it means


def test_clustered_errors_beside_lm_evals(judgement_results):
    """MedMCQA names ``subject_name`` as its cluster and MedQuAD its source document (``source`` + ``qid``
    before "-"): the labels are read here from the per-sample logs with ``json``, and the clustered SE
    follows Miller's formula by hand."""
    from medmoe_lm_eval.analysis.task_errors import clustered_errors

    table = clustered_errors(load_results(judgement_results.root), ["parent"]).set_index("task")
    assert sorted(table.index) == ["medmoe_medmcqa", "medmoe_medquad"]  # the tasks of this board with a cluster field
    by_hand = {
        "medmoe_medmcqa": ("acc", lambda doc: doc["subject_name"]),
        "medmoe_medquad": ("rougeL_f1", lambda doc: doc["source"] + "/" + doc["qid"].rsplit("-", 1)[0]),
    }
    for task, (metric, label) in by_hand.items():
        lines = [json.loads(x) for x in next((judgement_results.root / "parent").glob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
        score = np.array([float(x[metric]) for x in lines])
        labels = [label(x["doc"]) for x in lines]
        residual_sums = [sum(v - score.mean() for v, g in zip(score, labels, strict=True) if g == c) for c in set(labels)]
        row = table.loc[task]
        assert row["metric"] == metric and row["n"] == 5 and row["n_clusters"] == len(set(labels))
        assert row["stderr_clustered"] == pytest.approx(np.sqrt(np.sum(np.square(residual_sums))) / 5, abs=1e-12)
        assert row["stderr_naive"] == pytest.approx(np.sqrt(np.mean((score - score.mean()) ** 2) / 5), abs=1e-12)


def test_compare_json_adds_the_mde_from_the_logged_discordance(judgement_results, capsys):
    """``lbfx_bio`` has no cluster field: its MDE is sqrt(k d / (n + k)) (at least k / (n + k)) with d counted
    here from the two per-sample logs; MedMCQA's clusters give an MDE from the clustered SE instead."""
    assert main(["compare", "--results", str(judgement_results.root), "parent", "copy-other", "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)["tasks"]}
    k = 7.848879
    acc = {
        c: {
            json.loads(x)["doc_id"]: float(json.loads(x)["acc"])
            for x in next((judgement_results.root / c).glob("samples_lbfx_bio_*.jsonl")).read_text().splitlines()
        }
        for c in ("parent", "copy-other")
    }
    n = len(acc["parent"])
    d = sum(acc["parent"][i] != acc["copy-other"][i] for i in acc["parent"]) / n
    bio = rows["lbfx_bio"]
    assert bio["n_clusters"] == 0 and bio["discordance"] == pytest.approx(d)
    assert bio["mde"] == pytest.approx(max(np.sqrt(k * d / (n + k)), k / (n + k)), abs=1e-5)
    assert bio["power_note"].startswith("a difference of 2 points would go unseen") and bio["power_note"].endswith(f"at n = {n}")
    docs = [json.loads(x)["doc"] for x in next((judgement_results.root / "parent").glob("samples_medmoe_medmcqa_*.jsonl")).read_text().splitlines()]
    subjects = len({doc["subject_name"] for doc in docs})  # whole clusters only when some subject holds two or more items
    assert rows["medmoe_medmcqa"]["n_clusters"] == (subjects if subjects < len(docs) else 0) and rows["medmoe_medmcqa"]["mde"] is not None

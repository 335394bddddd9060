"""Fidelity of a copy to its parent: hand-computed known answers, then real tiny-model runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medmoe_lm_eval.analysis.fidelity import JSON_KEYS, fidelity, kl_divergence, pair_figures, paired_items
from medmoe_lm_eval.cli import main
from medmoe_lm_eval.harness.config import ConfigError, load_adapter, parse_adapter
from medmoe_lm_eval.quantization.make import write_adapter
from medmoe_lm_eval.store.results import load_results

LN = math.log


def _items(rows: list[tuple[str, int, float, tuple[float, ...] | None, str | None]]) -> pd.DataFrame:
    """(candidate, doc_id, acc, option log-likelihoods, response) -> an item frame."""
    return pd.DataFrame(
        [
            {"candidate": c, "task": "t", "doc_id": d, "doc_hash": f"h{d}", "metric": "acc", "score": s, "option_ll": ll, "response": r}
            for c, d, s, ll, r in rows
        ]
    )


def test_a_copy_identical_to_its_parent_agrees_fully_with_no_flips_and_zero_kl():
    lls = [(-1.0, -2.0, -3.0), (-2.0, -0.5, -4.0), (-3.0, -3.0, -0.1)]
    scores = [1.0, 0.0, 1.0]
    rows = [(c, i, s, ll, None) for c in ("p", "q") for i, (s, ll) in enumerate(zip(scores, lls, strict=True))]
    fig = pair_figures(paired_items(_items(rows), "t", "acc", "p", "q"))
    assert fig["n_paired"] == 3 and fig["agreement"] == 1.0
    assert fig["flips_correct_to_wrong"] == 0 and fig["flips_wrong_to_correct"] == 0
    assert fig["kl_mean"] == 0.0 and fig["kl_p99"] == 0.0
    assert fig["delta"] == 0.0 and fig["p_value"] == 1.0


def test_a_copy_that_always_picks_another_option_agrees_never():
    # gold: 0, 0, 2. The parent picks option 0 every time (right, right, wrong); the copy picks 1 (always wrong).
    parent = [("p", i, s, (0.0, -2.0, -2.0), None) for i, s in enumerate([1.0, 1.0, 0.0])]
    copy = [("q", i, 0.0, (-2.0, 0.0, -2.0), None) for i in range(3)]
    fig = pair_figures(paired_items(_items(parent + copy), "t", "acc", "p", "q"))
    assert fig["agreement"] == 0.0
    assert (fig["flips_correct_to_wrong"], fig["flips_wrong_to_correct"]) == (2, 0)
    assert fig["flip_cw_rate"] == pytest.approx(2 / 3) and fig["flip_wc_rate"] == 0.0
    assert fig["flip_cw_low"] < 2 / 3 < fig["flip_cw_high"]
    assert fig["delta"] == pytest.approx(-2 / 3)


def test_kl_divergence_mean_and_p99_by_hand():
    # softmax([0, 0]) = (.5, .5); softmax([ln 9, 0]) = (.9, .1):
    # KL = .5 ln(.5/.9) + .5 ln(.5/.1) = .5(-0.587787) + .5(1.609438) = 0.510826
    assert kl_divergence([0.0, 0.0], [LN(9), 0.0]) == pytest.approx(0.510826, abs=1e-6)
    assert kl_divergence([LN(0.5), LN(0.5)], [LN(0.9), LN(0.1)]) == pytest.approx(0.510826, abs=1e-6)
    rows = [("p", i, 1.0, (0.0, 0.0), None) for i in range(3)] + [
        ("q", 0, 1.0, (0.0, 0.0), None),
        ("q", 1, 1.0, (0.0, 0.0), None),
        ("q", 2, 1.0, (LN(9), 0.0), None),
    ]
    fig = pair_figures(paired_items(_items(rows), "t", "acc", "p", "q"))
    # KLs 0, 0, 0.510826: mean 0.170275; p99 (linear) = 0.98 x 0.510826 = 0.500609
    assert fig["kl_mean"] == pytest.approx(0.170275, abs=1e-6)
    assert fig["kl_p99"] == pytest.approx(0.500609, abs=1e-6)


def test_generation_agreement_is_the_share_of_identical_outputs():
    out_p, out_q = ["a", "b", "c", "d"], ["a", "x", "c", "y"]
    rows = [("p", i, 0.5, None, r) for i, r in enumerate(out_p)] + [("q", i, 0.25, None, r) for i, r in enumerate(out_q)]
    fig = pair_figures(paired_items(_items(rows), "t", "acc", "p", "q"))
    assert fig["agreement"] == 0.5 and "kl_mean" not in fig and "flips_correct_to_wrong" not in fig


def test_quantize_records_the_parent_and_a_hand_written_parent_is_checked(tmp_path):
    path = write_adapter(tmp_path, "gen-q4", "a copy", {"backend": "hf", "model": "."}, "general", parent="gen", parent_model="/models/gen")
    data = yaml.safe_load(path.read_text())
    assert (data["parent"], data["parent_model"]) == ("gen", "/models/gen")
    (tmp_path / "config.json").write_text("{}")
    assert load_adapter(path).parent == "gen"
    with pytest.raises(ConfigError, match="parent"):
        parse_adapter({"name": "x", "kind": "single", "parent": "x", "experts": [{"name": "x", "model": "m"}]}, "x.yaml")


# -- real runs --------------------------------------------------------------------------------


def _argmax_by_doc(path: Path) -> dict[int, int]:
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        lls = [float(pair[0]) for pair in row["filtered_resps"]]  # lm-eval writes them as strings
        out[row["doc_id"]] = lls.index(max(lls))
    return out


def test_real_copies_against_their_parent(judgement_results):
    rows, notes = fidelity(load_results(judgement_results.root))
    same = {r.task: r for r in rows if r.candidate == "copy-same"}
    for task in ("lbfx_bio", "lbfx_law", "lbfx_code", "medmoe_medmcqa"):
        r = same[task]
        assert (r.parent, r.n_paired, r.agreement, r.flips_correct_to_wrong, r.flips_wrong_to_correct, r.kl_mean, r.kl_p99) == (
            "parent",
            5,
            1.0,
            0,
            0,
            0.0,
            0.0,
        )
    assert same["medmoe_medquad"].agreement == 1.0 and math.isnan(same["medmoe_medquad"].kl_mean)
    assert same["medmoe_ppl_biomedical"].ppl_ratio == 1.0
    other = {r.task: r for r in rows if r.candidate == "copy-other"}
    assert set(other) == {"lbfx_bio", "lbfx_law", "lbfx_code", "medmoe_medmcqa"}
    for task, r in other.items():  # agreement counted straight from the two per-sample logs
        p, q = (_argmax_by_doc(next((judgement_results.root / c).glob(f"samples_{task}_*.jsonl"))) for c in ("parent", "copy-other"))
        assert r.agreement == pytest.approx(np.mean([p[d] == q[d] for d in p]))
    assert rows[0].candidate == "copy-other" and rows[0].agreement == min(r.agreement for r in other.values())
    assert not [n for n in notes if "no documents" in n]


def test_fidelity_cli_json_has_exactly_the_issue_keys(judgement_results, capsys):
    assert main(["fidelity", "--results", str(judgement_results.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out and all(tuple(row) == JSON_KEYS for row in out)
    ppl = next(row for row in out if row["task"] == "medmoe_ppl_biomedical")
    assert ppl["agreement"] is None and ppl["kl_mean"] is None and ppl["ppl_ratio"] == 1.0
    assert main(["fidelity", "--results", str(judgement_results.root)]) == 0
    assert "copy-other" in capsys.readouterr().out


def test_a_parent_missing_from_the_board_is_a_note_not_an_error(judgement_results, tmp_path):
    import shutil

    shutil.copytree(judgement_results.root / "copy-other", tmp_path / "copy-other")
    path = next((tmp_path / "copy-other").glob("results_*.json"))
    data = json.loads(path.read_text())
    data["config"]["medmoe"]["adapter"]["parent"] = "ghost"
    path.write_text(json.dumps(data))
    rows, notes = fidelity(load_results(tmp_path))
    assert rows == [] and notes == ["copy-other: parent 'ghost' has no runs on this board"]

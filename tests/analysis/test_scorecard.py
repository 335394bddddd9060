"""The router scorecard: hand-computed known answers, then a real keyword-routed mixture vs its oracle."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmoe_lm_eval.analysis.scorecard import JSON_KEYS, REGRET_DEFINITION, TASK_JSON_KEYS, gap_recovered, oracle_agreement, scorecard, task_regret
from medmoe_lm_eval.cli import main
from medmoe_lm_eval.store.results import load_results


def test_gap_recovered_by_hand():
    quality = {"mix": (0.4, 0.6), "oracle": (0.8, 0.8), "a": (0.2, 0.2), "b": (0.3, 0.5)}
    main_rows = pd.DataFrame([{"candidate": c, "task": t, "quality": q} for c, qs in quality.items() for t, q in zip(("t1", "t2"), qs, strict=True)])
    gap, best = gap_recovered(main_rows, "mix", "oracle", ["a", "b"])
    assert best == "b" and gap == pytest.approx((0.5 - 0.4) / (0.8 - 0.4))  # means: mix .5, oracle .8, b .4
    assert math.isnan(gap_recovered(main_rows, "mix", None, ["a", "b"])[0])  # no oracle
    assert math.isnan(gap_recovered(main_rows, "mix", "a", ["b"])[0])  # oracle (.2) below the best expert (.4): no gap


def test_regret_is_oracle_minus_router_by_hand():
    # router right on 3 of 5 documents, the oracle on 4 (the router misses document 1): regret +0.2
    d = task_regret(np.array([1, 0, 1, 1, 0]), np.array([1, 1, 1, 1, 0]))
    assert d.delta == pytest.approx(0.2) and d.a == pytest.approx(0.6) and d.b == pytest.approx(0.8)
    assert d.p_value == pytest.approx(1.0)  # exact McNemar, one discordant pair: 2 * 0.5 capped at 1
    assert 0.0 <= d.ci_low <= 0.2 <= d.ci_high <= 1.0  # no document favours the router: every resample is >= 0
    swapped = task_regret(np.array([1, 1, 1, 1, 0]), np.array([1, 0, 1, 1, 0]))  # a router better than the oracle: negative
    assert swapped.delta == pytest.approx(-0.2) and REGRET_DEFINITION == "oracle - router"


def test_oracle_agreement_request_by_request_by_hand():
    def log(tops: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"task": "t", "doc_id": i // 2, "request_type": "loglikelihood", "top_expert": e, "domain": "bio", "routed_domain": None}
                for i, e in enumerate(tops)
            ]
        )

    assert oracle_agreement(log(["bio", "law", "bio", "bio"]), log(["bio", "bio", "bio", "bio"]))["t"] == pytest.approx(3 / 4)
    without = log(["bio"] * 4).assign(routed_domain=["bio", "law", "law", "law"])
    assert oracle_agreement(without, pd.DataFrame())["t"] == pytest.approx(1 / 4)  # no oracle log: the task's domain


def _log_rows(root: Path, candidate: str) -> list[dict]:
    return [json.loads(line) for path in (root / candidate).glob("routing_*.jsonl") for line in path.read_text().splitlines()]


def _mean_acc(root: Path, candidate: str, task: str) -> float:
    lines = [json.loads(line) for line in next((root / candidate).glob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
    return sum(r["acc"] for r in lines) / len(lines)


def test_real_keyword_router_scorecard(judgement_results):
    root = judgement_results.root
    card = scorecard(load_results(root), "moe-keywords")
    log = _log_rows(root, "moe-keywords")
    assert card.oracle_candidate == "moe-oracle"
    assert card.routing_accuracy == pytest.approx(sum(r["domain"] == r["routed_domain"] for r in log) / len(log))
    assert card.router_ms_p50 == pytest.approx(statistics.median(r["router_ms"] for r in log))
    tasks = {t.task: t for t in card.tasks}
    assert set(tasks) == {"lbfx_bio", "lbfx_law", "lbfx_code"}
    for name, t in tasks.items():
        assert t.regret == pytest.approx(_mean_acc(root, "moe-oracle", name) - _mean_acc(root, "moe-keywords", name))  # oracle - router
        assert t.regret_ci_low <= t.regret <= t.regret_ci_high and t.n_paired == 5
        rows = [r for r in log if r["task"] == name]
        assert t.requests == len(rows) and t.domain == rows[0]["domain"]
    assert card.best_single in {"parent", "copy-same", "copy-other"}
    assert int(card.confusion.to_numpy().sum()) == len(log)


def test_routing_cli_json_keys_and_errors(judgement_results, capsys):
    root = str(judgement_results.root)
    assert main(["routing", "--results", root, "--candidate", "moe-keywords", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert tuple(out) == JSON_KEYS and out["tasks"] and all(tuple(t) == TASK_JSON_KEYS for t in out["tasks"])
    assert out["regret_definition"].startswith("oracle - router")  # the sign the page and the table use, said in the JSON
    card = {t.task: t for t in scorecard(load_results(root), "moe-keywords").tasks}
    assert all(t["regret"] == pytest.approx(card[t["task"]].regret) for t in out["tasks"])
    assert main(["routing", "--results", root, "--candidate", "moe-keywords"]) == 0
    printed = capsys.readouterr().out
    assert "regret = oracle - router (positive: routing lost accuracy)" in " ".join(printed.split())
    assert main(["routing", "--results", root, "--candidate", "moe-oracle", "--json"]) == 0
    oracle = json.loads(capsys.readouterr().out)
    assert oracle["oracle_candidate"] is None and oracle["gap_recovered"] is None and oracle["routing_accuracy"] == 1.0
    assert main(["routing", "--results", root, "--candidate", "parent"]) == 2
    assert "not a mixture" in capsys.readouterr().err

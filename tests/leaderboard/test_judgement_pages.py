"""The Fidelity page, the Routing page's scorecard and the Compare page's subjects, over real runs (AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from medmoe_lm_eval.analysis.precision import interval_decimals, with_interval
from medmoe_lm_eval.analysis.scorecard import scorecard
from medmoe_lm_eval.analysis.views import REGRET_COLUMN
from medmoe_lm_eval.paths import leaderboard_dir
from medmoe_lm_eval.store.results import load_results

APP = str(leaderboard_dir() / "app.py")


def _app(monkeypatch, folder) -> AppTest:
    monkeypatch.setenv("MEDMOE_RESULTS", str(folder))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    return AppTest.from_file(APP, default_timeout=60).run()


def _table(at: AppTest, column: str):
    matches = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(matches) == 1, f"{len(matches)} tables with column {column!r}"
    return matches[0]


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_fidelity_page_lists_copies_worst_first_and_calibration(monkeypatch, judgement_results):
    at = _app(monkeypatch, judgement_results.root)
    at.switch_page("pages/fidelity.py").run()
    _clean(at)
    table = _table(at, "kl_mean")
    assert list(dict.fromkeys(table["candidate"])) == ["copy-other", "copy-same"] and set(table["parent"]) == {"parent"}
    same = table[(table["candidate"] == "copy-same") & table["kl_mean"].notna()]
    assert (same["agreement"] == 1.0).all() and (same["kl_mean"] == 0.0).all()
    lead = _table(at, "copy - parent [95%]")  # the table read first: same rows, figures at their intervals' precision
    assert list(lead["copy"]) == list(table["candidate"]) and list(lead["verdict"]) == list(table["verdict_text"])
    for shown, row in zip(lead.to_dict("records"), table.to_dict("records"), strict=True):
        assert shown["copy - parent [95%]"] == with_interval(row["delta"], row["delta_low"], row["delta_high"], signed=True)
    cal = _table(at, "acc_at_80")
    assert {"parent", "copy-other", "moe-keywords"} <= set(cal["candidate"]) and cal["ece"].between(0, 1).all()


def test_routing_page_scorecard_and_compare_page_subjects(monkeypatch, judgement_results):
    at = _app(monkeypatch, judgement_results.root)
    at.switch_page("pages/routing.py").run()
    at.selectbox(key="routing_candidate").set_value("moe-keywords").run()
    _clean(at)
    shown = _table(at, REGRET_COLUMN).set_index("task")
    card = {t.task: t for t in scorecard(load_results(judgement_results.root), "moe-keywords").tasks}
    assert set(shown.index) == set(card)
    for task, row in shown.iterrows():  # one sign: the scorecard's oracle - router, at its interval's precision
        t = card[task]
        places = interval_decimals(t.regret_ci_low, t.regret_ci_high)
        assert row[REGRET_COLUMN] == with_interval(t.regret, t.regret_ci_low, t.regret_ci_high, signed=True)
        assert float(row[REGRET_COLUMN].split(" ")[0]) == pytest.approx(t.regret, abs=0.51 * 10**-places)
        assert row["agreement"] == pytest.approx(t.agreement)
    assert any("regret = oracle - router" in c.value for c in at.caption)
    assert any(m.label == "oracle" and m.value == "moe-oracle" for m in at.metric)
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="compare_a").set_value("parent").run()
    at.selectbox(key="compare_b").set_value("copy-other").run()
    _clean(at)
    subjects = _table(at, "subject")
    assert set(subjects["task"]) == {"medmoe_medmcqa"} and subjects["n"].sum() == 5
    assert any(c.value.startswith("Weakest") for c in at.caption)

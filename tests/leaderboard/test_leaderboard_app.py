"""The Streamlit leaderboard driven by ``AppTest`` over a folder of real tiny-model runs.

Every page runs on the same folder (real ``hf`` and ``medmoe`` runs plus a truncated file, a
relabelled copy, an unknown metric and a non-results JSON), the sidebar filter changes the table,
and an empty or missing folder gives a plain message instead of an error.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from medmoe_lm_eval.analysis.precision import with_interval
from medmoe_lm_eval.analysis.use_cases import BUNDLED_USE_CASES
from medmoe_lm_eval.analysis.views import DIFFERENCE, overview_table
from medmoe_lm_eval.paths import leaderboard_dir
from medmoe_lm_eval.store.results import load_results

APP = str(leaderboard_dir() / "app.py")
PAGES = ("pages/overview.py", "pages/use_cases.py", "pages/tradeoffs.py", "pages/routing.py", "pages/compare.py")


def _app(monkeypatch, folder, use_cases=None) -> AppTest:
    monkeypatch.setenv("MEDMOE_RESULTS", str(folder))
    if use_cases is not None:
        monkeypatch.setenv("MEDMOE_USE_CASES", str(use_cases))
    else:
        monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    return AppTest.from_file(APP, default_timeout=60).run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


#: a column that tells each table apart (AppTest does not expose a dataframe's key)
TABLES = {
    "problems_table": "problem", "summary_table": "win_rate", "results_table": "stderr", "ranking_table": "why",
    "regret_table": "regret", "misrouted_table": "text", "compare_table": "delta",
}  # fmt: skip


def _frame(at: AppTest, table: str):
    matches = [d.value for d in at.dataframe if TABLES[table] in d.value.columns]
    assert len(matches) == 1, f"{table}: {len(matches)} tables with column {TABLES[table]!r}"
    return matches[0]


def _chart_data(chart) -> pd.DataFrame:
    """The data Streamlit sent for an Altair chart (Arrow IPC), as a DataFrame."""
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()


def test_overview_shows_every_candidate_and_the_reading_problems(monkeypatch, board_results):
    at = _app(monkeypatch, board_results.root)
    _no_errors(at)
    assert at.title[0].value == "Overview"
    assert any("problem(s) while reading" in w.value for w in at.warning)
    problems = _frame(at, "problems_table")
    assert any("broken/results_" in f for f in problems["file"]) and any("truncated or corrupt" in p for p in problems["problem"])
    assert any("profiling was switched off" in p for p in problems["problem"])
    summary = _frame(at, "summary_table")
    expected = set(board_results.real_candidates) | set(board_results.synthetic_candidates)
    assert set(summary["candidate"]) == expected  # the HTML name is data here, drawn as text
    results = _frame(at, "results_table")
    assert set(results["metric"]) == {"acc", "acc_norm", "macro_f1"}
    assert len(results) == len(overview_table(load_results(board_results.root).frame)) == (len(expected) - 1) * 3 * 2 + 3
    project = results[results["candidate"] == board_results.project_candidate]
    assert set(project["task"]) == {"medmoe_pubmedqa", "medmoe_medmcqa"} and set(project["domain"]) == {"biomedical"}
    newest = sorted(p for p in results["run_id"] if p.startswith("tiny-bio/"))
    assert len(set(newest)) == 1  # the re-run won; the older run stays in history only
    assert len(load_results(board_results.root).history.query("candidate == 'tiny-bio'")["run_id"].unique()) == 2
    assert at.download_button[0].label == "Download these rows as CSV"


def test_sidebar_filter_changes_the_table(monkeypatch, board_results):
    # AppTest reruns the current page without the entrypoint after the first run, so the page
    # frames itself (board_ui.current_view); interact once that steady state is reached.
    at = _app(monkeypatch, board_results.root).run()
    kind = next(m for m in at.sidebar.multiselect if m.label == "Kind")
    assert set(kind.options) >= {"full", "MoE", "GPTQ"}
    kind.select("MoE").run()
    _no_errors(at)
    results = _frame(at, "results_table")
    assert set(results["candidate"]) == {"moe-oracle", "moe-keywords"}
    assert len(results) == 2 * 3 * 2
    at.toggle[0].set_value(True).run()  # every metric, not only accuracy-type
    assert len(_frame(at, "results_table")) == 2 * 3 * 2  # these runs have no other metrics
    next(m for m in at.sidebar.multiselect if m.label == "Kind").unselect("MoE").run()
    at.toggle[0].set_value(True).run()
    assert "mystery_score" in set(_frame(at, "results_table")["metric"])


def test_every_page_runs_on_real_results(monkeypatch, board_results):
    at = _app(monkeypatch, board_results.root)
    for page in PAGES:
        at.switch_page(page).run()
        _no_errors(at)
        assert at.title, page


def test_use_cases_rank_and_say_when_nothing_qualifies(monkeypatch, board_results, tmp_path):
    bundled = BUNDLED_USE_CASES.read_text(encoding="utf-8")
    extra = "\n  impossible:\n    name: Impossible\n    weights: {accuracy: 1}\n    limits: ['accuracy >= 0.99']\n  broken:\n    name: Broken\n    weights: {speed: 1}\n"
    cases = tmp_path / "use_cases.yaml"
    cases.write_text(bundled + extra, encoding="utf-8")
    at = _app(monkeypatch, board_results.root, cases)
    assert any("use case 'broken' skipped" in w.value for w in at.warning)
    at.switch_page("pages/use_cases.py").run()
    _no_errors(at)
    box = at.selectbox(key="use_case")
    assert box.options == [
        "Low-latency medical chatbot",
        "High-accuracy diagnosis",
        "Mobile or edge deployment",
        "Research and knowledge retrieval",
        "Impossible",
    ]
    box.set_value("edge").run()
    table = _frame(at, "ranking_table")
    ranked = table[table["rank"] != "—"]
    assert set(ranked["candidate"]) >= {"tiny-bio", "moe-oracle", "tiny-bio-gptq-synthetic"}
    plain = table.set_index("candidate").loc["model"]
    assert plain["rank"] == "—" and "peak memory ≤ 8.00 GB (not measured)" in plain["why"]
    assert all(w.startswith("meets peak memory") for w in ranked["why"])
    assert all(lo <= int(r) for r, lo in zip(ranked["rank"], ranked["rank range"].str.split("–").str[0].astype(int), strict=True))
    assert set(table["tied"]) <= {"= leader", ""} and (table.loc[table["rank"] == "—", "rank range"] == "—").all()
    at.selectbox(key="use_case").set_value("impossible").run()
    assert any(w.value.startswith("No candidate meets every limit of Impossible") for w in at.warning)
    assert (_frame(at, "ranking_table")["rank"] == "—").all()


def test_tradeoff_charts_mark_the_pareto_front_with_error_bars(monkeypatch, board_results):
    at = _app(monkeypatch, board_results.root)
    at.switch_page("pages/tradeoffs.py").run()
    _no_errors(at)
    at.selectbox(key="tradeoff_task").set_value("lbfx_bio").run()
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2  # latency and memory (energy only where NVML or RAPL measured it)
    spec = json.loads(charts[0].proto.spec)
    colour = spec["layer"][1]["encoding"]["color"]
    assert colour["field"] == "kind" and colour["scale"]["domain"] == ["full", "AWQ", "GPTQ", "GGUF", "MoE", "other"]
    bars = spec["layer"][3]
    assert bars["mark"]["type"] == "rule" and bars["encoding"]["y"]["field"] == "ci_low" and bars["encoding"]["y2"]["field"] == "ci_high"
    data = _chart_data(charts[0])
    assert {"moe-oracle", "tiny-bio", board_results.html_name} <= set(data["candidate"])
    assert "model" not in set(data["candidate"])  # plain run: no latency, listed below the chart
    assert (data["pareto"] == "on front").any()
    assert ((data["ci_low"] <= data["quality"]) & (data["quality"] <= data["ci_high"])).all()
    # latency has a horizontal error bar: the interval of its p50 over the serving probe's measurements
    across = spec["layer"][4]
    assert across["mark"]["type"] == "rule" and across["encoding"]["x"]["field"] == "latency_ms_low" and across["encoding"]["x2"]["field"] == "latency_ms_high"
    probed = data.dropna(subset=["latency_ms_low"])
    assert (
        "tiny-bio" in set(probed["candidate"])
        and ((probed["latency_ms_low"] <= probed["latency_ms"]) & (probed["latency_ms"] <= probed["latency_ms_high"])).all()
    )
    n_items = data.set_index("candidate")["n_items"]
    assert n_items["tiny-bio"] == 6 and n_items["tiny-bio-gptq-synthetic"] == 0  # a copied results file has no samples: stderr bars
    # one task's own metric, chance-corrected: 4 options, so quality = (acc - 1/4) / (3/4) from the results file
    bio = load_results(board_results.root).frame.query("candidate == 'tiny-bio' and task == 'lbfx_bio' and metric == 'acc'")["value"].iloc[0]
    assert data.set_index("candidate").loc["tiny-bio", "quality"] == pytest.approx((bio - 0.25) / 0.75)
    assert any("Not shown (no latency measured)" in c.value for c in at.caption)


def test_routing_page_shows_shares_confusion_regret_and_misroutes(monkeypatch, board_results):
    at = _app(monkeypatch, board_results.root)
    at.switch_page("pages/routing.py").run()
    _no_errors(at)
    box = at.selectbox(key="routing_candidate")
    assert box.options == ["moe-keywords", "moe-oracle"]
    box.set_value("moe-keywords").run()
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # share heatmap, confusion heatmap
    shares = _chart_data(charts[0])
    assert shares.groupby("task")["share"].sum().round(6).eq(1.0).all()
    regret = _frame(at, "regret_table")
    assert set(regret["task"]) == {"lbfx_bio", "lbfx_law", "lbfx_code"} and set(regret["oracle"]) == {"moe-oracle"}
    wrong = _frame(at, "misrouted_table")
    assert len(wrong) > 0 and (wrong["domain"] != wrong["routed_domain"]).all()
    at.selectbox(key="routing_candidate").set_value("moe-oracle").run()
    assert any("No misrouted requests" in i.value for i in at.info)


def test_compare_page_paired_statistics_badges_and_escaped_names(monkeypatch, board_results):
    from medmoe_lm_eval.analysis.comparison import compare

    at = _app(monkeypatch, board_results.root)
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="compare_a").set_value("tiny-bio").run()
    at.selectbox(key="compare_b").set_value(board_results.html_name).run()
    _no_errors(at)
    table = _frame(at, "compare_table").set_index("task")
    assert set(table.index) == {"lbfx_bio", "lbfx_law", "lbfx_code"} and set(table["metric"]) == {"acc"}
    for task, row in table.iterrows():
        assert row["delta"] == pytest.approx(row["b"] - row["a"]) and row["n_paired"] == 6  # the fixture's runs keep their samples
        assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["test"] == "exact McNemar"
        assert (row["verdict"] == "no significant difference") == (row["ci_low"] <= 0 <= row["ci_high"]), task
    same = compare(load_results(board_results.root), "tiny-bio", board_results.html_name).table().set_index("task")
    pd.testing.assert_series_equal(table["delta"], same["delta"], check_names=False)  # the numbers of `medmoe compare`
    # the verdict is said once, in the table: no callout box per task repeating it
    assert (table["verdict"] == "no significant difference").any()
    assert not any("no significant difference" in i.value for i in [*at.info, *at.success])
    lead = next(d.value for d in at.dataframe if {DIFFERENCE, "verdict"} <= set(d.value.columns)).set_index("task")  # the table read first
    for task, row in table.iterrows():  # B - A at its interval's precision: "+0.17 [-0.33, +0.67]" for a half-width of 0.5
        assert lead.loc[task, DIFFERENCE] == with_interval(row["delta"], row["ci_low"], row["ci_high"], signed=True)
        assert lead.loc[task, "verdict"] == row["verdict"]
    efficiency = next(d.value for d in at.dataframe if "figure" in d.value.columns)
    assert {"single-stream latency p50", "peak memory"} <= set(efficiency["figure"])
    memory = efficiency[efficiency["figure"] == "peak memory"]
    assert memory["A"].str.endswith(" GB").all() and not memory["A"].str.contains(r"\d{7}").any()  # GB, not raw bytes
    latency = efficiency[efficiency["figure"] == "single-stream latency p50"]
    assert latency[DIFFERENCE].str.endswith(" ms").all()
    assert any("badge[local directory]" in m.value for m in at.markdown)  # the fixture tasks read local JSONL files
    heads = [m.value for m in at.markdown if m.value.startswith("**")]
    assert "**tiny\\-bio**" in heads
    assert any("\\<script\\>" in h for h in heads) and not any("<script>" in h for h in heads)


@pytest.mark.parametrize("kind", ["empty", "missing"])
def test_empty_or_missing_folder_says_so_on_every_page(monkeypatch, tmp_path, kind):
    folder = tmp_path / "results"
    if kind == "empty":
        folder.mkdir()
    at = _app(monkeypatch, folder)
    _no_errors(at)
    message = "no lm-eval results found" if kind == "empty" else "does not exist"
    assert any("problem(s) while reading" in w.value for w in at.warning)
    assert any(message in p for p in _frame(at, "problems_table")["problem"])
    for page in PAGES:
        at.switch_page(page).run()
        _no_errors(at)
        assert any("No lm-eval results under" in i.value for i in at.info), page


def test_the_app_modules_never_import_torch(board_results):
    """What the pages import (board_ui, store, analysis, cli.board) reads a real folder, ranks with
    intervals and compares with paired tests without torch."""
    import subprocess
    import sys

    code = (
        "import sys; import board_ui, medmoe_lm_eval.cli.board;"
        "from medmoe_lm_eval.store.results import load_results; from medmoe_lm_eval.analysis.views import overview_table, summary_display;"
        "r = load_results(sys.argv[1]); assert not r.frame.empty; summary_display(r.frame); overview_table(r.frame);"
        "from medmoe_lm_eval.analysis.comparison import compare; from medmoe_lm_eval.analysis.ranking import rank_results;"
        "from medmoe_lm_eval.analysis.use_cases import load_use_cases; from medmoe_lm_eval.analysis.tradeoffs import task_points;"
        "from medmoe_lm_eval.store.samples import load_items; compare(r, 'tiny-bio', 'moe-oracle'); [rank_results(r, c) for c in load_use_cases()[0].values()];"
        "task_points(r.frame, load_items(r)[0], 'lbfx_bio');"
        "print(sorted(m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(leaderboard_dir()), os.environ.get("PYTHONPATH")])),
    }  # the page modules import as Streamlit imports them
    out = subprocess.run([sys.executable, "-c", code, str(board_results.root)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"

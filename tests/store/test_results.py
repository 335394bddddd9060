"""Reading results folders: the real runs, the awkward files, and the CLI forms of the same numbers.

Edge cases are built from copies of real results files (written by lm-eval for tiny models in
``results_fixtures``), changed in exactly the way each case needs.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rich.table import Table

from medmoe_lm_eval.analysis.board_export import export_board, rank_tables
from medmoe_lm_eval.analysis.routing import misrouted, routing_confusion, routing_regret
from medmoe_lm_eval.analysis.use_cases import load_use_cases
from medmoe_lm_eval.analysis.views import Filters, compare_candidates, overview_table
from medmoe_lm_eval.cli import main
from medmoe_lm_eval.cli.board import streamlit_command
from medmoe_lm_eval.store.files import fingerprint
from medmoe_lm_eval.store.records import FRAME_COLUMNS
from medmoe_lm_eval.store.results import energy_per_correct, load_results
from medmoe_lm_eval.store.routing_logs import read_routing_log, routing_logs


def _real(root: Path, folder: str) -> dict:
    return json.loads(sorted((root / folder).glob("results_*.json"))[-1].read_text(encoding="utf-8"))


def _plain(root: Path) -> dict:
    """The plain ``hf`` run on the fixture's own three tasks."""
    files = (f for f in sorted(root.glob("*/results_*.json")) if "broken" not in str(f))
    return next(d for d in (json.loads(f.read_text(encoding="utf-8")) for f in files) if d["config"]["model"] == "hf" and "lbfx_bio" in d["results"])


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The real folder


def test_real_runs_make_a_tidy_frame(board_results):
    res = load_results(board_results.root)
    frame = res.frame
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert set(frame["candidate"]) == set(board_results.real_candidates) | set(board_results.synthetic_candidates)
    assert not frame.duplicated(["candidate", "task", "metric", "filter"]).any()
    bio = frame[(frame["candidate"] == "tiny-bio") & (frame["metric"] == "acc")].set_index("task")
    assert set(bio.index) == {"lbfx_bio", "lbfx_law", "lbfx_code"}
    assert bio.loc["lbfx_law", "domain"] == "legal"  # from configs[task].metadata.domain
    assert bio["kind"].eq("full").all() and bio["adapter_kind"].eq("single").all()
    assert bio["latency_ms_p50"].gt(0).all() and bio["peak_memory_bytes"].gt(0).all()
    assert bio["requests_per_s"].gt(0).all() and bio["n_samples"].eq(6).all()
    assert bio["adapter_sha256"].str.len().eq(64).all() and bio["lm_eval_version"].eq("0.4.13").all()
    assert bio["task_version"].eq("1.0").all() and bio["hardware"].notna().all()
    assert ((bio["value"] >= 0) & (bio["value"] <= 1) & bio["stderr"].ge(0)).all()
    moe = frame[frame["candidate"] == "moe-oracle"]
    assert moe["kind"].eq("MoE").all() and moe["router_type"].eq("oracle").all()
    plain = frame[frame["candidate"] == "model"]
    assert plain["profiled"].eq(False).all() and plain["latency_ms_p50"].isna().all() and plain["backend"].eq("hf").all()
    project = frame[frame["candidate"] == board_results.project_candidate].set_index(["task", "metric"])
    calibration = {(t, m) for t in ("medmoe_pubmedqa", "medmoe_medmcqa") for m in ("ece", "brier_score")}
    assert set(project.index) == {("medmoe_pubmedqa", "acc"), ("medmoe_pubmedqa", "macro_f1"), ("medmoe_medmcqa", "acc")} | calibration
    lower_better = project.index.isin(list(calibration))
    assert project["domain"].eq("biomedical").all() and project["higher_is_better"].eq(~lower_better).all()
    gptq = frame[frame["candidate"] == "tiny-bio-gptq-synthetic"]
    assert gptq["kind"].eq("GPTQ").all() and gptq["quantization"].eq("gptq 4-bit g128").all()


def test_awkward_files_give_warnings_not_errors(board_results):
    res = load_results(board_results.root)
    by_file = {i.file: i for i in res.issues}
    broken = by_file[str(board_results.truncated)]
    assert broken.level == "warning" and "truncated or corrupt" in broken.message
    assert any("profiling was switched off" in i.message and i.level == "warning" for i in res.issues)
    assert any("unknown metric 'mystery_score'" in i.message for i in res.issues)
    assert any(i.file.endswith("notes.json") and i.level == "info" for i in res.issues)
    mystery = res.frame[res.frame["metric"] == "mystery_score"]
    assert len(mystery) == 3 and mystery["higher_is_better"].isna().all()
    assert board_results.html_name in set(res.frame["candidate"])  # kept as data; escaped where drawn


def test_rerun_latest_wins_and_history_keeps_the_older_one(board_results):
    res = load_results(board_results.root)
    runs = res.history[res.history["candidate"] == "tiny-bio"].drop_duplicates("run_id").sort_values("date")
    assert len(runs) == 2 and runs["latest"].tolist() == [False, True]
    assert set(res.frame.loc[res.frame["candidate"] == "tiny-bio", "run_id"]) == {runs["run_id"].iloc[-1]}
    assert not res.runs[runs["run_id"].iloc[0]].latest
    notes = [i.message for i in res.issues if i.file == "tiny-bio"]
    assert len(notes) == 1 and notes[0].startswith("1 older run(s) on 3 task(s) superseded; showing the latest")


def test_routing_regret_pairs_router_with_oracle(board_results):
    res = load_results(board_results.root)
    regret = routing_regret(res).set_index("task")
    assert set(regret.index) == {"lbfx_bio", "lbfx_law", "lbfx_code"}
    assert (regret["candidate"] == "moe-keywords").all() and (regret["oracle"] == "moe-oracle").all()
    for _, row in regret.iterrows():
        assert row["regret"] == pytest.approx(row["oracle_value"] - row["router_value"])


def test_filters_and_tables(board_results):
    frame = load_results(board_results.root).frame
    moe = Filters(kind=("MoE",), domain=("legal",)).apply(frame)
    assert set(moe["candidate"]) == {"moe-oracle", "moe-keywords"} and set(moe["task"]) == {"lbfx_law"}
    table = overview_table(frame)
    assert set(table["metric"]) == {"acc", "acc_norm", "macro_f1"} and "peak_memory_gb" in table
    back = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
    assert len(back) == len(table) and set(back["candidate"]) == set(table["candidate"])
    both = compare_candidates(frame, "tiny-bio", "moe-oracle")
    row = both[(both["task"] == "lbfx_bio") & (both["metric"] == "acc")].iloc[0]
    assert row["delta"] == pytest.approx(row["moe-oracle"] - row["tiny-bio"])
    lat = both[(both["task"] == "lbfx_bio") & (both["metric"] == "latency_ms_p50")].iloc[0]
    assert lat["ci_low"] <= lat["ci_high"]  # B - A from the probe's measurements of both runs
    faster = "tiny-bio" if lat["tiny-bio"] < lat["moe-oracle"] else "moe-oracle"
    assert lat["better"] == ("no significant difference" if lat["ci_low"] <= 0 <= lat["ci_high"] else faster)


# ---------------------------------------------------------------------------------------------
# Edge cases from copies of real files


def test_profile_read_from_profile_file_or_reported_missing(board_results, tmp_path):
    real = _real(board_results.root, "tiny-bio")
    profile = real["config"]["medmoe_profile"]
    from_file = copy.deepcopy(real)
    del from_file["config"]["medmoe_profile"]
    from_file["config"]["medmoe"]["candidate"] = "from-file"
    from_file["config"]["medmoe"]["profile_file"] = "profile_from-file.json"
    _write(tmp_path / "a" / "results_2026-03-01T00-00-00.json", from_file)
    _write(tmp_path / "a" / "profile_from-file.json", profile)
    missing = copy.deepcopy(from_file)
    missing["config"]["medmoe"].update(candidate="no-profile", profile_file=None)
    _write(tmp_path / "b" / "results_2026-03-01T00-00-00.json", missing)
    res = load_results(tmp_path)
    rows = res.frame.set_index(["candidate", "task", "metric"])
    assert rows.loc[("from-file", "lbfx_bio", "acc"), "batch_latency_ms_p50"] == pytest.approx(profile["tasks"]["lbfx_bio"]["batch_latency_ms"]["p50"])
    assert rows.loc[("from-file", "lbfx_bio", "acc"), "latency_ms_p50"] == pytest.approx(profile["single_stream"]["lbfx_bio"]["e2e_ms"]["p50"])
    assert math.isnan(rows.loc[("no-profile", "lbfx_bio", "acc"), "latency_ms_p50"])
    assert [i.message for i in res.warnings] == ["medmoe run without a profile: efficiency columns left empty"]


def test_energy_per_correct_uses_task_energy_and_accuracy(board_results, tmp_path):
    real = _real(board_results.root, "tiny-bio")
    real["config"]["medmoe_profile"]["tasks"]["lbfx_bio"]["energy_j"] = 12.0
    real["results"]["lbfx_bio"]["acc,none"] = 0.5
    real["config"]["medmoe_profile"]["tasks"]["lbfx_law"]["energy_j"] = 9.0
    real["results"]["lbfx_law"]["acc,none"] = 0.0
    _write(tmp_path / "x" / "results_2026-03-01T00-00-00.json", real)
    rows = load_results(tmp_path).frame.query("metric == 'acc'").set_index("task")
    assert rows.loc["lbfx_bio", "energy_per_correct_j"] == pytest.approx(12.0 / (0.5 * 6))
    assert math.isnan(rows.loc["lbfx_law", "energy_per_correct_j"])  # nothing correct: no figure
    assert math.isnan(energy_per_correct(None, "t", 0.5, 6))


def test_odd_values_names_dates_and_groups(board_results, tmp_path):
    plain = _plain(board_results.root)
    odd = copy.deepcopy(plain)
    odd["config"]["model_args"] = "pretrained=org/Модель-<i>x</i>,dtype=float32"  # old string form
    del odd["date"]
    task = "lbfx_bio"
    odd["results"][task]["acc_stderr,none"] = "N/A"
    odd["results"][task]["samples,none"] = [1, 2]
    odd["results"]["medical_group"] = {"alias": "medical_group", "acc,none": 0.4}
    odd["group_subtasks"] = {"medical_group": [task]}
    _write(tmp_path / "o" / "results_2026-04-05T06-07-08.123456.json", odd)
    for i, parent in enumerate(("one", "two")):  # two different local models named alike
        twin = copy.deepcopy(plain)
        twin["config"]["model_args"] = {"pretrained": f"/models/{parent}/same"}
        _write(tmp_path / f"t{i}" / "results_2026-03-01T00-00-00.json", twin)
    res = load_results(tmp_path)
    frame = res.frame
    odd_rows = frame[frame["candidate"] == "org/Модель-<i>x</i>"]
    assert odd_rows["date"].iloc[0] == pd.Timestamp("2026-04-05T06:07:08.123456", tz="UTC")
    acc = odd_rows[(odd_rows["task"] == task) & (odd_rows["metric"] == "acc")].iloc[0]
    assert math.isnan(acc["stderr"]) and not acc["is_group"]
    assert odd_rows[odd_rows["task"] == "medical_group"]["is_group"].all()
    assert any("samples,none has no numeric value" in i.message for i in res.issues)
    assert {"same (/models/one/same)", "same (/models/two/same)"} <= set(frame["candidate"])


def test_empty_and_missing_folders(tmp_path):
    empty = load_results(tmp_path)
    assert empty.frame.empty and list(empty.frame.columns) == list(FRAME_COLUMNS)
    assert [i.message for i in empty.warnings] == ["no lm-eval results found below this folder"]
    assert overview_table(empty.frame).empty
    missing = load_results(tmp_path / "nope")
    assert "does not exist" in missing.warnings[0].message


def test_non_utf8_and_non_dict_files(tmp_path):
    (tmp_path / "results_bad.json").write_bytes(b"\xff\xfe\x00garbage")
    _write(tmp_path / "results_list.json", [1, 2])
    _write(tmp_path / "results_weird.json", {"results": {"t": {"acc,none": "high"}}, "config": "not a dict"})
    res = load_results(tmp_path)
    assert res.frame.empty
    messages = " | ".join(i.message for i in res.issues)
    assert "cannot read" in messages and "not an lm-eval results file" in messages and "no numeric metrics" in messages


def test_routing_logs_confusion_and_bad_lines(board_results, tmp_path):
    res = load_results(board_results.root)
    log, issues = routing_logs(res, "moe-keywords")
    assert issues == [] and len(log) == 3 * 6 * 4  # three tasks, six questions, four choices each
    confusion = routing_confusion(log)
    assert confusion.to_numpy().sum() == len(log)
    wrong = misrouted(log)
    assert (wrong["domain"] != wrong["routed_domain"]).all()
    off_diagonal = sum(confusion.loc[d, r] for d in confusion.index for r in confusion.columns if d != r)
    assert len(wrong) > 0 and off_diagonal >= len(wrong)
    copy_path = tmp_path / "routing_copy.jsonl"
    copy_path.write_text(Path(res.latest_runs("moe-keywords")[0].routing_log).read_text(encoding="utf-8") + "{not json\n[1, 2]\n", encoding="utf-8")
    found: list = []
    again = read_routing_log(copy_path, found)
    assert len(again) == len(log) and [i.message for i in found] == ["2 malformed routing-log line(s) skipped"]
    gone = copy.deepcopy(res)
    info = gone.latest_runs("moe-keywords")[0]
    info.routing_log = str(tmp_path / "missing.jsonl")
    assert "is missing" in routing_logs(gone, "moe-keywords")[1][0].message


def test_fingerprint_changes_when_a_run_lands(board_results, tmp_path):
    shutil.copytree(board_results.root / "tiny-bio", tmp_path / "tiny-bio")
    before = fingerprint(tmp_path)
    _write(tmp_path / "late" / "results_2027-01-01T00-00-00.json", _real(board_results.root, "tiny-bio"))
    assert fingerprint(tmp_path)[1] == before[1] + 1


# ---------------------------------------------------------------------------------------------
# Terminal and static forms (the same numbers)


def test_rank_prints_a_table_for_a_use_case(board_results, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["rank", "--results", str(board_results.root), "--use-case", "edge"]) == 0
    out = capsys.readouterr().out
    assert "Mobile or edge deployment (edge)" in out and "tiny-bio" in out and "peak memory" in out
    assert "<script>alert(1)</script>" in out  # a terminal shows the name as it is, markup not interpreted
    assert main(["rank", "--results", str(board_results.root), "--use-case", "nope"]) == 2
    assert "choose one of: chatbot, diagnosis, edge, research" in capsys.readouterr().out
    assert main(["rank", "--list"]) == 0 and "Low-latency medical chatbot" in capsys.readouterr().out
    tables = [t for t in rank_tables(board_results.root) if isinstance(t, Table)]
    assert [str(t.title) for t in tables] == [
        "Low-latency medical chatbot (chatbot)",
        "High-accuracy diagnosis (diagnosis)",
        "Mobile or edge deployment (edge)",
        "Research and knowledge retrieval (research)",
    ]


def test_rank_written_to_a_log_keeps_whole_cells(board_results, capsys, monkeypatch):
    """Piped output has no terminal width; rich's 80-column fallback would cut cells to '…'."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["rank", "--results", str(board_results.root), "--use-case", "edge"]) == 0
    out = capsys.readouterr().out
    assert "tiny-bio" in out and "…" not in out
    monkeypatch.setenv("COLUMNS", "60")  # an explicit width still wins
    assert main(["rank", "--results", str(board_results.root), "--use-case", "edge"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 60


def test_rank_fits_120_columns_wide_shows_all_and_json_gives_every_use_case(board_results, capsys, monkeypatch):
    """The default table is the answer (rank, range, tie, name, kind, score, why) in 120 columns, every
    name whole on one line; ``--wide`` adds the figures and counts; ``--json`` alone: every use case."""
    import json
    import unicodedata

    monkeypatch.setenv("COLUMNS", "120")
    assert main(["rank", "--results", str(board_results.root)]) == 0
    out = capsys.readouterr().out
    width = lambda line: sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
    assert max(width(line) for line in out.splitlines()) <= 120
    assert "singl" not in out.replace("single-stream", "")  # headers are whole words, not folded letters
    for name in ("tiny-bio-gptq-synthetic", "moe-keywords", "tiny-code-noprofile"):
        assert any(name in line for line in out.splitlines()), name
    assert "┃ items" not in out
    monkeypatch.setenv("COLUMNS", "300")  # --wide is for a wide window or a file
    assert main(["rank", "--results", str(board_results.root), "--use-case", "edge", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "items" in wide and "peak memory" in wide
    assert main(["rank", "--results", str(board_results.root), "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert list(every) == ["chatbot", "diagnosis", "edge", "research"]
    assert all({"use_case", "candidates"} <= set(v) for v in every.values())
    assert main(["rank", "--results", str(board_results.root), "--use-case", "nope", "--json"]) == 2


def test_export_html_and_markdown_escape_names(board_results, tmp_path):
    res = load_results(board_results.root)
    cases, _ = load_use_cases()
    page = export_board(res, cases, tmp_path / "board.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert all(c.name in page for c in cases.values()) and "Warnings while reading results" in page
    md = export_board(res, cases, tmp_path / "board.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;b&gt;Médecin" in md and "| rank | rank range | tied | candidate |" in md
    assert main(["leaderboard", "--results", str(board_results.root), "--export", str(tmp_path / "b.txt")]) == 2
    assert main(["leaderboard", "--results", str(board_results.root), "--export", str(tmp_path / "c.html")]) == 0


def test_leaderboard_refuses_a_missing_folder_and_binds_localhost(tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    command = streamlit_command(8600)
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert Path(command[command.index("run") + 1]).name == "app.py"


# ---------------------------------------------------------------------------------------------
# Comparability keys, data sources, per-item records


def _bio_copy(board_results, tmp_path: Path, name: str, stamp: str, change=None) -> Path:
    """A copy of tiny-bio's newest real run (with its per-sample logs) under ``tmp_path/name``."""
    src = sorted((board_results.root / "tiny-bio").glob("results_*.json"))[-1]
    data = json.loads(src.read_text(encoding="utf-8"))
    if change:
        change(data)
    target = _write(tmp_path / name / f"results_{stamp}.json", data)
    for task in data["results"]:
        old = src.parent / f"samples_{task}_{src.stem.removeprefix('results_')}.jsonl"
        shutil.copy(old, target.parent / f"samples_{task}_{stamp}.jsonl")
    return target


def test_runs_under_other_keys_are_shown_apart_with_the_reason(board_results, tmp_path):
    _bio_copy(board_results, tmp_path, "full", "2026-03-01T00-00-00.000000")

    def smoke(data):
        data["config"]["limit"] = 5.0
        for counts in data["n-samples"].values():
            counts["effective"] = 5

    def bundled(data):
        for config in data["configs"].values():
            config["metadata"].update(benchmark="medmcqa", medmoe_data="bundled")

    _bio_copy(board_results, tmp_path, "smoke", "2026-03-02T00-00-00.000000", smoke)  # newer, but limited
    _bio_copy(board_results, tmp_path, "sample", "2026-03-03T00-00-00.000000", bundled)  # newer, on the bundled sample
    res = load_results(tmp_path)
    assert set(res.frame["run_id"]) == {"full/results_2026-03-01T00-00-00.000000.json"}
    assert set(res.frame["data_source"]) == {"dir"}
    why = res.apart.drop_duplicates("run_id").set_index("run_id")["variant"]
    assert why["smoke/results_2026-03-02T00-00-00.000000.json"] == "limit 5"
    assert why["sample/results_2026-03-03T00-00-00.000000.json"] == "bundled sample"
    notes = [i.message for i in res.issues if i.file == "tiny-bio"]
    assert notes == ["runs under another comparability key are shown apart, not merged (lbfx_bio: bundled sample; lbfx_bio: limit 5; lbfx_code: bundled sample; "
                     "lbfx_code: limit 5; lbfx_law: bundled sample; lbfx_law: limit 5)"]  # fmt: skip
    assert not any("mixes runs" in i.message for i in res.issues)  # the sample run is not on the board: nothing mixed


def test_a_board_mixing_sample_and_full_runs_warns_once(board_results, tmp_path):
    _bio_copy(board_results, tmp_path, "full", "2026-03-01T00-00-00.000000")

    def other_sampled(data):
        data["config"]["medmoe"]["candidate"] = "bio-on-sample"
        data["config"]["medmoe"]["adapter"]["sha256"] = "0" * 64
        for config in data["configs"].values():
            config["metadata"].update(benchmark="lawse", medmoe_data="bundled")  # the bundled Law-StackExchange rows are synthetic

    _bio_copy(board_results, tmp_path, "other", "2026-03-02T00-00-00.000000", other_sampled)
    res = load_results(tmp_path)
    mixed = [i for i in res.warnings if "mixes runs" in i.message]
    assert len(mixed) == 1 and "(1 candidate(s)) with runs on full data (1)" in mixed[0].message
    assert set(res.frame.loc[res.frame["candidate"] == "bio-on-sample", "data_source"]) == {"synthetic"}
    table = overview_table(res.frame)
    assert set(table.loc[table["candidate"] == "bio-on-sample", "data"]) == {"synthetic"}
    assert set(table.loc[table["candidate"] == "tiny-bio", "data"]) == {"local directory"}


def test_sandbox_mechanism_is_a_badge_not_a_metric(board_results, tmp_path):
    def isolated(value: float):
        def change(data):
            data["config"]["medmoe"]["candidate"] = f"sandboxed-{value:g}"
            data["results"]["lbfx_code"]["sandbox_isolated,none"] = value
            data["results"]["lbfx_code"]["sandbox_isolated_stderr,none"] = 0.0

        return change

    _bio_copy(board_results, tmp_path, "ns", "2026-03-01T00-00-00.000000", isolated(1.0))
    _bio_copy(board_results, tmp_path, "rl", "2026-03-02T00-00-00.000000", isolated(0.0))
    res = load_results(tmp_path)
    assert "sandbox_isolated" not in set(res.history["metric"])  # never a score, so never ranked
    code = res.frame[res.frame["task"] == "lbfx_code"].drop_duplicates("candidate").set_index("candidate")["sandbox"]
    assert code["sandboxed-1"] == "namespaces" and code["sandboxed-0"] == "rlimits+audit"
    table = overview_table(res.frame)
    assert set(table.loc[table["task"] == "lbfx_code", "sandbox"]) == {"sandbox: namespaces", "sandbox: rlimits+audit"}
    assert set(table.loc[table["task"] == "lbfx_bio", "sandbox"]) == {""}


def test_per_item_records_from_real_samples_and_bad_lines(board_results, tmp_path):
    from medmoe_lm_eval.store.samples import load_items, missing_samples, read_samples

    res = load_results(board_results.root)
    items, issues = load_items(res, ["tiny-bio"], ["lbfx_bio"])
    assert issues == [] and len(items) == 2 * 6 and set(items["metric"]) == {"acc", "acc_norm"}  # 6 documents, 2 metrics each
    assert items["doc_hash"].str.len().eq(64).all() and items["option_ll"].map(len).eq(4).all() and items["n_choices"].eq(4).all()
    acc = items[items["metric"] == "acc"]
    frame_acc = res.frame.query("candidate == 'tiny-bio' and task == 'lbfx_bio' and metric == 'acc'")["value"].iloc[0]
    assert acc["score"].mean() == pytest.approx(frame_acc)  # the per-item scores average to lm-eval's figure
    assert ("tiny-bio-gptq-synthetic", "lbfx_bio") in missing_samples(res)  # a copied results file without its logs
    path = Path(res.frame.query("candidate == 'tiny-bio' and task == 'lbfx_bio'")["samples_file"].iloc[0])
    broken = tmp_path / "samples_x.jsonl"
    broken.write_text(path.read_text(encoding="utf-8") + '{"doc_id": 1}\nnot json\n', encoding="utf-8")
    found: list = []
    again = read_samples(broken, "lbfx_bio", "r", found)
    assert len(again) == len(items) and [i.message for i in found] == ["2 malformed per-sample line(s) skipped"]
    # wrong types from a file made elsewhere: a dict as doc_id (unhashable: it broke the pairing), a bool,
    # a dict among the declared metrics, a score that is not finite; the good line still counts
    good = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    hostile = [{**good, "doc_id": {"a": 1}}, {**good, "doc_id": True}, {**good, "doc_id": 99, "metrics": [{"x": 1}, "acc"], "acc": float("nan")}, good]
    odd = tmp_path / "samples_odd.jsonl"
    odd.write_text("".join(json.dumps(line) + "\n" for line in hostile), encoding="utf-8")
    found = []
    rows = read_samples(odd, "lbfx_bio", "r", found)
    assert [i.message for i in found] == ["2 malformed per-sample line(s) skipped"]
    assert sorted(rows["metric"]) == ["acc", "acc_norm"] and set(rows["doc_id"]) == {good["doc_id"]}  # doc 99: its only metric is NaN


def test_a_score_its_metric_cannot_take_is_dropped_and_said(board_results, tmp_path):
    from medmoe_lm_eval.store.samples import read_samples

    # the task mean: acc 1.7 (accuracy is a share) and word perplexity 0.5 (never below 1) go, with
    # a warning each; acc_norm 0.5 and a negative standard error's metric stay, the stderr unused
    odd = copy.deepcopy(_plain(board_results.root))
    task = "lbfx_bio"
    odd["results"][task].update({"acc,none": 1.7, "acc_norm,none": 0.5, "acc_norm_stderr,none": -0.1, "word_perplexity,none": 0.5})
    _write(tmp_path / "o" / "results_2026-04-05T06-07-08.json", odd)
    res = load_results(tmp_path)
    rows = res.frame[res.frame["task"] == task].set_index("metric")
    assert "acc" not in rows.index and "word_perplexity" not in rows.index
    assert rows.loc["acc_norm", "value"] == 0.5 and math.isnan(rows.loc["acc_norm", "stderr"])
    messages = [i.message for i in res.issues]
    assert f"task {task}: acc,none = 1.7 is outside [0, 1], so it is not that metric; skipped" in messages
    assert f"task {task}: word_perplexity,none = 0.5 is outside [1, inf], so it is not that metric; skipped" in messages
    # one document's acc of 1e308 (it overflowed the rank bootstrap's sums) or -1: malformed lines
    path = Path(load_results(board_results.root).frame.query("candidate == 'tiny-bio' and task == 'lbfx_bio'")["samples_file"].iloc[0])
    good = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    lines = [{**good, "acc": 1e308}, {**good, "doc_id": 98, "acc": -1}, {**good, "doc_id": 97, "acc": 1.0}]
    log = tmp_path / "samples_bounds.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    found: list = []
    items = read_samples(log, task, "r", found)
    assert [i.message for i in found] == ["2 malformed per-sample line(s) skipped"]
    assert set(items["doc_id"]) == {97} and items.query("metric == 'acc'")["score"].tolist() == [1.0]


def test_a_run_without_samples_still_ranks_with_a_note(board_results, capsys):
    assert main(["rank", "--results", str(board_results.root), "--use-case", "research", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["candidates"]
    by_name = {r["candidate"]: r for r in rows}
    assert by_name["tiny-bio-gptq-synthetic"]["rank"] is not None and by_name["tiny-bio"]["n_items"] == 3 * 6
    assert by_name["tiny-bio-gptq-synthetic"]["n_items"] == 0
    assert by_name[board_results.project_candidate]["rank"] is None and "did not run" in by_name[board_results.project_candidate]["excluded_reason"]
    assert main(["rank", "--results", str(board_results.root), "--use-case", "research"]) == 0
    assert "paired comparisons need --log_samples" in capsys.readouterr().out

"""The results format: each record kind written through ``medmoe_lm_eval.schema``, read back
through the store; versions this code does not read cost one line naming the file; and a results
folder written before ``schema_version`` existed (``tests/support/data/previous_layout``, made by the
harness at commit 77d1a7c) reads exactly as the store read it then.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layout_snapshot import snapshot

from medmoe_lm_eval.analysis.scorecard import scorecard
from medmoe_lm_eval.harness.routing.decision_log import RoutingLog
from medmoe_lm_eval.profiling import ProfileError
from medmoe_lm_eval.schema.profile import Profile, disabled
from medmoe_lm_eval.schema.routing_row import RoutingRow
from medmoe_lm_eval.schema.run_record import PROFILE_SECTION, RUN_SECTION, RoutingSummary, RunRecord, TaskRouting, run_section
from medmoe_lm_eval.store.profiles import load_profile
from medmoe_lm_eval.store.results import load_results
from medmoe_lm_eval.store.routing_logs import routing_logs

PREVIOUS = Path(__file__).resolve().parents[1] / "support" / "data" / "previous_layout"
RESULTS_NAME = "results_2026-03-01T00-00-00.000000.json"
PROFILE_NAME = "profile_2026-03-01T00-00-00.json"
LOG_NAME = "routing_2026-03-01T00-00-00.jsonl"


def _record() -> RunRecord:
    per_task = {"t": TaskRouting(requests=2, domain="biomedical", share={"bio": 0.5, "gen": 0.5}, agreement=0.5, fallbacks=1)}
    return RunRecord(
        candidate="moe-a",
        kind="moe",
        label="moe",
        adapter={"name": "moe-a", "kind": "moe", "sha256": "abc123"},
        experts={"bio": {"backend": "hf", "model": "/m/bio", "num_parameters": 1000}, "gen": {"backend": "hf", "model": "/m/gen", "num_parameters": 500}},
        routing=RoutingSummary({"type": "keywords", "top_k": 1}, [], LOG_NAME, per_task),
        profile_file=PROFILE_NAME,
        medmoe_data="bundled",
        version="0.0-test",
    )


def _profile() -> Profile:
    return Profile(
        device="cpu", started_at="2026-03-01T00:00:00+00:00", wall_s=2.0, hardware={"cpu_model": "Test CPU", "cpu_cores": 2},
        software={}, total={"requests": 2, "wall_s": 1.0}, failed_batches=0, request_types={}, tasks={"t": {"energy_j": 4.0}},
        experts={}, served=None, single_stream=None, router={}, memory={"peak_rss_bytes": 1000}, energy={}, sampler={},
    )  # fmt: skip


def _rows() -> list[RoutingRow]:
    return [
        RoutingRow("t", 0, "loglikelihood", ["bio"], [1.0], "biomedical", "biomedical", 0.1, "a patient"),
        RoutingRow("t", 1, "loglikelihood", ["gen"], [1.0], "biomedical", "general", 0.1, "the weather", fallback=True),
    ]


def _write_run(root: Path, record: RunRecord, profile: dict, rows: list[RoutingRow]) -> Path:
    """A results folder with one medmoe run: lm-eval's file, the profile and the routing log beside it."""
    folder = root / "moe-a"
    folder.mkdir(parents=True)
    log = RoutingLog(folder / LOG_NAME)
    log.add(rows)
    log.close()
    (folder / PROFILE_NAME).write_text(json.dumps(profile), encoding="utf-8")
    results = {
        "results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.25}},
        "config": {"model": "medmoe", "model_args": {"adapter": "moe-a.yaml"}, RUN_SECTION: record.to_dict()},
        "configs": {"t": {"task": "t", "output_type": "multiple_choice"}},
        "n-samples": {"t": {"original": 2, "effective": 2}},
        "higher_is_better": {"t": {"acc": True}},
        "date": 1772323200.0,
    }
    path = folder / RESULTS_NAME
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def test_each_record_kind_written_through_the_schema_reads_back_through_the_store(tmp_path):
    record, profile = _record(), _profile().to_dict()
    _write_run(tmp_path, record, profile, _rows())
    res = load_results(tmp_path)
    assert [str(i) for i in res.warnings] == []
    (info,) = res.runs.values()
    assert info.record == record and info.medmoe == json.loads(json.dumps(record.to_dict()))  # the run record, whole
    assert info.medmoe["schema_version"] == 1 and info.profile == profile and profile["schema_version"] == 3
    row = res.frame.set_index("metric").loc["acc"]
    assert (row["candidate"], row["label"], row["kind"], row["adapter_sha256"]) == ("moe-a", "moe", "MoE", "abc123")
    assert row["domain"] == "biomedical"  # from the run record's routing summary: the task names none
    assert row["num_parameters"] == 1500 and row["peak_memory_bytes"] == 1000 and row["energy_per_request_j"] == 2.0
    assert load_profile(tmp_path / "moe-a" / PROFILE_NAME) == profile
    log, issues = routing_logs(res, "moe-a")
    assert issues == [] and list(log["fallback"]) == [False, True] and list(log["top_expert"]) == ["bio", "gen"]
    assert [json.loads(line)["schema_version"] for line in (tmp_path / "moe-a" / LOG_NAME).read_text().splitlines()] == [1, 1]
    assert scorecard(res, "moe-a").fallbacks == 1  # the row's fallback flag, read where it matters


def test_a_disabled_profile_is_versioned_and_reads_as_switched_off(tmp_path):
    _write_run(tmp_path, _record(), disabled(), _rows())
    res = load_results(tmp_path)
    assert disabled() == {"schema_version": 3, "enabled": False}
    assert not res.frame["profiled"].any() and any("profiling was switched off" in str(i) for i in res.issues)


def _one_line(note: str, *names: str) -> None:
    assert "\n" not in note and "schema_version 99" in note and "upgrade medmoe-lm-eval" in note
    assert all(n in note for n in names), (note, names)


def test_a_run_record_of_an_unknown_version_is_one_note_naming_the_file(tmp_path):
    record = {**_record().to_dict(), "schema_version": 99}
    path = _write_run(tmp_path, _record(), _profile().to_dict(), _rows())
    data = json.loads(path.read_text())
    data["config"][RUN_SECTION] = record
    path.write_text(json.dumps(data))
    res = load_results(tmp_path)
    notes = [str(i) for i in res.issues if "schema_version" in str(i)]
    assert len(notes) == 1 and res.runs == {} and res.frame.empty
    _one_line(notes[0], f"moe-a/{RESULTS_NAME}", "run record")
    assert run_section(data["config"])[0] is None
    assert run_section({RUN_SECTION: _record().to_dict()})[1] is None


def test_a_profile_of_an_unknown_version_is_one_note_and_the_run_still_reads(tmp_path):
    _write_run(tmp_path, _record(), {**_profile().to_dict(), "schema_version": 99}, _rows())
    res = load_results(tmp_path)
    notes = [str(i) for i in res.issues if "schema_version" in str(i)]
    assert len(notes) == 1 and list(res.frame["candidate"]) == ["moe-a"] and not res.frame["profiled"].any()
    assert not any("without a profile" in str(i) for i in res.issues)  # the version note says why
    _one_line(notes[0], PROFILE_NAME, "profile")
    with pytest.raises(ProfileError) as raised:
        load_profile(tmp_path / "moe-a" / PROFILE_NAME)
    _one_line(str(raised.value), str(tmp_path / "moe-a" / PROFILE_NAME))


def test_routing_rows_of_an_unknown_version_are_one_note_the_others_read(tmp_path):
    first, second = _rows()
    _write_run(tmp_path, _record(), _profile().to_dict(), [first])
    with (tmp_path / "moe-a" / LOG_NAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({**json.loads(second.to_line()), "schema_version": 99}) + "\n")
    log, issues = routing_logs(load_results(tmp_path), "moe-a")
    assert list(log["doc_id"]) == [0] and len(issues) == 1
    _one_line(str(issues[0]), LOG_NAME, "1 line(s)", "routing-log row")


def test_records_without_a_version_are_the_previous_layout_and_read():
    """The checked-in folder was written before ``schema_version``: none of its records has one."""
    results = sorted((PREVIOUS / "results").rglob("results_*.json"))
    assert results, "the previous-layout folder is missing"
    for path in results:
        config = json.loads(path.read_text(encoding="utf-8"))["config"]
        assert "schema_version" not in config.get(RUN_SECTION, {}) and "schema_version" not in config.get(PROFILE_SECTION, {})
        if RUN_SECTION in config:
            assert RunRecord.read(config[RUN_SECTION]).candidate == config[RUN_SECTION]["candidate"]


def test_a_results_folder_of_the_previous_layout_reads_as_it_did():
    expected = json.loads((PREVIOUS / "expected.json").read_text(encoding="utf-8"))
    assert snapshot(PREVIOUS / "results") == expected
    log, _ = routing_logs(load_results(PREVIOUS / "results"), "moe-keywords")
    assert len(log) == 16 and set(log["fallback"]) == {False}  # the old rows carried the flag too: now it is read

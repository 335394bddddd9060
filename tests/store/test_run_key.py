"""The comparability key and the data source read from a task's recorded config."""

from __future__ import annotations

from medmoe_lm_eval.store.run_key import data_source, key_reasons, preference, run_key


def test_data_source_of_project_and_builtin_tasks():
    ours = {"metadata": {"benchmark": "medmcqa", "medmoe_data": "bundled"}}
    assert (data_source(ours).kind, data_source(ours).badge) == ("bundled", "bundled sample")
    lawse = {"metadata": {"benchmark": "lawse", "medmoe_data": "bundled"}}
    assert data_source(lawse).kind == "synthetic"  # the bundled Law-StackExchange rows are marked synthetic
    hub = data_source({"metadata": {"benchmark": "medmcqa"}})
    assert hub.kind == "hub" and hub.origin.startswith("hub:") and "medmcqa" in hub.origin.lower()
    folder = data_source({"metadata": {"benchmark": "medmcqa", "medmoe_data": "/data/med"}})
    assert (folder.kind, folder.origin, folder.is_sample) == ("dir", "/data/med", False)
    builtin = data_source({"dataset_path": "openlifescienceai/medmcqa", "dataset_name": None, "dataset_kwargs": {"revision": "abc123"}})
    assert (builtin.kind, builtin.origin) == ("hub", "hub:openlifescienceai/medmcqa@abc123")
    local = data_source({"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": "/x/y/data.jsonl"}}})
    assert (local.kind, local.origin) == ("dir", "/x/y")
    assert data_source({}).kind == "unknown"


def _data(limit=None, effective=100, source="hub", version=1.0):
    meta = {"benchmark": "medmcqa"} | ({"medmoe_data": source} if source != "hub" else {})
    return {"config": {"limit": limit, "gen_kwargs": {}}, "n-samples": {"t": {"original": 100, "effective": effective}}, "versions": {"t": version},
            "configs": {"t": {"metadata": meta}}, "n-shot": {"t": 0}, "task_hashes": {"t": "f" * 64}, "lm_eval_version": "0.4.13"}  # fmt: skip


def test_key_reasons_and_preference():
    full = run_key(_data(), "t", "sha-a")
    smoke = run_key(_data(limit=5.0, effective=5), "t", "sha-a")
    sample = run_key(_data(source="bundled"), "t", "sha-a")
    assert full.digest() == run_key(_data(), "t", "sha-a").digest() and full.digest() != smoke.digest()
    assert key_reasons(smoke, full) == ["limit 5"]
    assert key_reasons(sample, full) == ["bundled sample"]
    assert key_reasons(run_key(_data(version=2.0), "t", "sha-b"), full) == ["adapter changed (sha-b)", "task version 2.0"]
    assert sorted([smoke, sample, full], key=preference)[0] == full  # the full run on the real data stands for the task
    assert full.task_part() == run_key(_data(), "t", "sha-other").task_part()  # two candidates, the same task setting

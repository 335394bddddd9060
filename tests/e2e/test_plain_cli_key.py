"""A plain ``lm_eval --model medmoe`` run carries the same comparability key as ``medmoe eval``.

Tried as a new user would: a demo-like results folder holds a 20-item MedMCQA run of a candidate
on the bundled sample; then the plain lm-eval CLI (a real subprocess) runs the same adapter with
``MEDMOE_DATA=bundled ... --limit 10``. The model records the data source itself, so the store
sees a bundled-sample run limited to 10 items: the 20-item run keeps standing for the candidate
and the new run is shown apart as "limit 10", never as "full data" replacing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from commands import write_adapter

from medmoe_lm_eval.store.results import load_results

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TASK = "medmoe_medmcqa"


def test_plain_lm_eval_run_records_source_and_limit_and_replaces_no_longer_run(tmp_path, tiny_model_dir):
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    adapter = write_adapter(tmp_path / "adapters", "moe-top1", {"kind": "single", "experts": [{"name": "m", "model": str(tiny_model_dir), "device": "cpu"}]})
    results = tmp_path / "results"
    evaluate_candidate(adapter, [TASK], results, "moe-top1", limit=20, device="cpu", extra_model_args={"probe": 0})  # what the demo does
    env = {**os.environ, "MEDMOE_DATA": "bundled", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    argv = [str(Path(sys.executable).with_name("lm_eval")), "--model", "medmoe", "--model_args", f"adapter={adapter},probe=0"]
    argv += ["--tasks", TASK, "--include_path", "tasks", "--output_path", str(results), "--limit", "10", "--device", "cpu"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (plain,) = [p for p in (results / "moe-top1").glob("results_*.json") if json.loads(p.read_text())["config"]["limit"] == 10]
    assert json.loads(plain.read_text())["config"]["medmoe"]["medmoe_data"] == "bundled"  # recorded by the model, not the wrapper

    store = load_results(results)
    history = store.history[store.history["metric"] == "acc"].set_index("limit")
    assert set(history.index) == {10.0, 20.0}
    assert (history.loc[20.0, "data_source"], history.loc[10.0, "data_source"]) == ("bundled", "bundled")
    assert (history.loc[20.0, "n_samples"], history.loc[10.0, "n_samples"]) == (20, 10)
    board = store.frame[store.frame["metric"] == "acc"]
    assert list(board["limit"]) == [20.0]  # the 20-item run still stands for moe-top1
    apart = store.apart[store.apart["metric"] == "acc"]
    assert list(apart["limit"]) == [10.0] and apart["variant"].iloc[0].startswith("limit 10")
    assert not [i for i in store.issues if "mixes runs on bundled" in i.message]  # no "full data" runs in the mix

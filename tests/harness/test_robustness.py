"""The robustness sweep: a killed run resumed from the cache, safe result files, awkward data rows,
and an expert failing mid-demo without costing the results that were already finished."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from commands import eval_cmd

from medmoe_lm_eval.jsonio import write_json_exclusive

REPO = Path(__file__).resolve().parents[2]
PPL = "medmoe_ppl_biomedical,medmoe_ppl_legal"


def adapter(tmp_path: Path, model: Path, **expert) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        yaml.safe_dump({"name": "tiny", "kind": "single", "experts": [{"name": "m", "model": str(model), "device": "cpu", "batch_size": 1, **expert}]})
    )
    return path


def _medmcqa_from(data: Path, tmp_path: Path, model: Path, timeout: float) -> subprocess.CompletedProcess:
    """``medmoe eval`` of the tiny model on MedMCQA rows read from the folder ``data`` (``MEDMOE_DATA``)."""
    cmd = eval_cmd(adapter(tmp_path, model), tmp_path / "out", "medmoe_medmcqa")
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MEDMOE_DATA": str(data)}, timeout=timeout, cwd=REPO)


def results_of(out: Path) -> dict:
    (path,) = sorted(out.rglob("results_*.json"))
    return json.loads(path.read_text())


def cached_entries(db: Path) -> int:
    from sqlitedict import SqliteDict

    if not db.exists():
        return 0
    try:
        with SqliteDict(str(db), flag="r") as d:
            return len(d)
    except Exception:  # the writer holds the table mid-commit: try again later
        return 0


@pytest.mark.slow
def test_killed_run_resumes_from_cache_with_identical_results(tmp_path, tiny_model_dir):
    env = {**os.environ, "MEDMOE_DATA": "bundled"}
    cfg = adapter(tmp_path, tiny_model_dir)
    reference = subprocess.run(eval_cmd(cfg, tmp_path / "ref", PPL), capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert reference.returncode == 0, reference.stderr[-2000:]
    total = results_of(tmp_path / "ref")["config"]["medmoe_profile"]["total"]["requests"]

    cache = tmp_path / "cache" / "run"
    db = Path(f"{cache}_rank0.db")
    proc = subprocess.Popen(
        eval_cmd(cfg, tmp_path / "killed", PPL, "--use_cache", str(cache)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO
    )
    try:
        deadline = time.monotonic() + 300
        while cached_entries(db) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    done = cached_entries(db)
    assert 10 <= done < total
    assert not list((tmp_path / "killed").rglob("results_*.json"))

    resumed = subprocess.run(
        eval_cmd(cfg, tmp_path / "resumed", PPL, "--use_cache", str(cache)), capture_output=True, text=True, env=env, timeout=600, cwd=REPO
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again, ref = results_of(tmp_path / "resumed"), results_of(tmp_path / "ref")
    assert again["results"] == ref["results"]
    assert again["config"]["medmoe_profile"]["total"]["requests"] == total - done


def test_results_are_written_atomically_and_never_overwritten(tmp_path):
    target = tmp_path / "results_2026.json"
    write_json_exclusive(target, {"a": 1})
    with pytest.raises(FileExistsError):
        write_json_exclusive(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_demo_reports_an_unwritable_results_folder_before_building(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {**os.environ, "MEDMOE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "medmoe_lm_eval", "demo", "--results", str(blocker / "demo")], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2 and "cannot write there" in proc.stderr
    assert not (tmp_path / "cache").exists()


def _medmcqa_rows(n: int) -> list[dict]:
    from medmoe_lm_eval.paths import bundled_data_dir

    lines = (bundled_data_dir() / "medmcqa.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_empty_and_huge_prompts_are_evaluated_and_truncation_is_counted(tmp_path, tiny_model_dir):
    rows = _medmcqa_rows(4)
    rows[1]["question"] = ""
    rows[2]["question"] = "very long history " * 6000  # ~100 KB, far past the 512-token window
    data = tmp_path / "data"
    data.mkdir()
    (data / "medmcqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = _medmcqa_from(data, tmp_path, tiny_model_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = results_of(tmp_path / "out")
    assert out["n-samples"]["medmoe_medmcqa"]["effective"] == 4
    assert out["config"]["medmoe_profile"]["tasks"]["medmoe_medmcqa"]["truncated"] == 4  # the 4 options of the huge question


def test_non_utf8_data_row_is_one_line_error(tmp_path, tiny_model_dir):
    data = tmp_path / "data"
    data.mkdir()
    row = json.dumps(_medmcqa_rows(1)[0]).encode()
    (data / "medmcqa.jsonl").write_bytes(row + b"\n" + row.replace(b'"question": "', b'"question": "caf\xe9 ') + b"\n")
    proc = _medmcqa_from(data, tmp_path, tiny_model_dir, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "medmcqa.jsonl: row 2" in last and "not UTF-8" in last and "fix:" in last


@pytest.mark.slow
def test_expert_out_of_memory_mid_demo_keeps_finished_results_injected(tmp_path, monkeypatch):
    """An out-of-memory error injected into one candidate's expert (no GPU here to exhaust)."""
    from medmoe_lm_eval.demo import pipeline as demo
    from medmoe_lm_eval.harness.backends.hf import HFBackend

    real = HFBackend.loglikelihood_rolling

    def failing_for_code(self, requests):
        if self.spec.name == "code":
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, requests)

    monkeypatch.setattr(HFBackend, "loglikelihood_rolling", failing_for_code)
    monkeypatch.setenv("MEDMOE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    args = argparse.Namespace(
        candidates="generalist,expert-code",
        tiny=True,
        tasks="medmoe_ppl_code",
        limit=3,
        results=str(out),
        device="cpu",
        train_steps=3,
        use_cache=False,
        max_gen_toks=32,
        verbose=False,
    )
    assert demo.run(args) == 1
    assert list((out / "generalist").glob("results_*.json"))  # finished before the failure: kept
    assert not list((out / "expert-code").glob("results_*.json"))

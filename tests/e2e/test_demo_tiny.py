"""``medmoe demo --tiny``: the pipeline on tiny models trained for the purpose, in seconds per model.

The tiny demo checks what only such models can show (each expert beats the generalist on its own
domain, the trained router is close to the oracle, quantized copies are ordered by precision), and
the console contract every demo keeps: one progress line per candidate, library output in a log.
It lives apart from the real demo's tests so the two run on different test workers.
"""

from __future__ import annotations

import json

import pytest
from demo_cli import demo, flat, latest_runs

from medmoe_lm_eval.demo.pipeline import PPL_TASKS
from medmoe_lm_eval.demo.report import DISCLAIMER, expectations, perplexities

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # the demo child may take its own 1200 s on a busy machine

TINY = [
    "generalist",
    "expert-biomedical",
    "expert-legal",
    "expert-code",
    "moe-top1",
    "moe-oracle",
    "generalist-gguf-f16",
    "generalist-gguf-q8_0",
    "generalist-gguf-q4_0",
]


# -- the tiny demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    root = tmp_path_factory.mktemp("demo")
    out, cache = root / "results", root / "cache"
    proc = demo(out, cache, "--tiny", "--candidates", ",".join(TINY), "--tasks", ",".join(PPL_TASKS), "--train-steps", "80")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, out, cache


def test_tiny_demo_output_shows_a_correct_pipeline(tiny_run):
    proc, out, _ = tiny_run
    checks = expectations(perplexities(latest_runs(out, TINY)))
    assert checks and all(ok is True for _, ok in checks), checks
    text = flat(proc.stdout)
    assert flat(DISCLAIMER) in text
    assert "medmoe leaderboard --results" in text
    assert "word perplexity on held-out domain text" in text


def test_tiny_demo_console_is_a_report_and_library_output_goes_to_the_log(tiny_run):
    proc, out, _ = tiny_run
    lines = proc.stdout.splitlines()
    assert len(lines) <= 150, len(lines)
    assert all(len(line) <= 80 or "/" in line for line in lines)  # as the real demo's
    assert proc.stderr == ""  # every library line went to the log
    log = out / "demo.log"
    assert f"library output (lm-eval, transformers, gptqmodel, llama.cpp): {log}" in proc.stdout
    text = log.read_text(encoding="utf-8")
    assert "Loading weights" in text and "medmoe loglikelihood_rolling" in text  # transformers' and the model's bars
    for noise in ("Loading weights", "it/s]", "WARNING", "INFO", "Custom kwargs"):
        assert noise not in proc.stdout, noise
    for i, name in enumerate(TINY, start=1):  # one progress line per candidate, ending in what it did
        (line,) = [line for line in lines if f"[{i}/{len(TINY)}] {name}:" in line]
        assert line.startswith("✓") and f"{len(PPL_TASKS)} tasks" in line, line
    for model in ("generalist", "biomedical", "legal", "code"):  # the build stage: one display, one line per model
        assert sum(line.startswith(f"training {model} ") for line in lines) == 1, model


def test_tiny_demo_runs_carry_profiles_routing_and_adapters(tiny_run):
    _, out, _ = tiny_run
    runs = latest_runs(out, TINY)
    for name, path in runs.items():
        config = json.loads(path.read_text())["config"]
        assert config["medmoe"]["candidate"] == name
        assert config["medmoe_profile"]["total"]["requests"] > 0
        assert (path.parent / config["medmoe"]["profile_file"]).is_file()
    routed = json.loads(runs["moe-top1"].read_text())["config"]["medmoe"]["routing"]
    assert (runs["moe-top1"].parent / routed["log_file"]).is_file()
    assert set(routed["per_task"]) == set(PPL_TASKS)
    labels = {n: json.loads(p.read_text())["config"]["medmoe"]["label"] for n, p in runs.items()}
    assert labels["generalist"] == "full" and labels["moe-top1"] == "moe" and labels["generalist-gguf-q4_0"] == "gguf-q4_0"
    assert (out / "adapters" / "moe-oracle.yaml").is_file()


def test_second_tiny_demo_run_reuses_the_built_candidates(tiny_run):
    _, out, cache = tiny_run
    models = sorted(cache.rglob("model.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in models}
    proc = demo(out, cache, "--tiny", "--candidates", "generalist,moe-oracle", "--tasks", "medmoe_ppl_code", "--limit", "3", "--train-steps", "80")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in models} == before
    assert len(list((out / "generalist").glob("results_*.json"))) == 2  # the earlier run is kept


def test_verbose_demo_prints_the_library_output(tiny_run, tmp_path):
    _, _, cache = tiny_run
    out = tmp_path / "results"
    proc = demo(out, cache, "--tiny", "--candidates", "generalist", "--tasks", "medmoe_ppl_code", "--limit", "2", "--train-steps", "80", "--verbose")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "medmoe loglikelihood_rolling" in proc.stderr and "Loading weights" in proc.stderr
    assert not (out / "demo.log").exists() and "demo.log" not in proc.stdout

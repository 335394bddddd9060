"""``medmoe demo`` on its own output: real models by default, tiny stand-ins with ``--tiny``.

The real demo runs narrowed so the suite stays fast: every default candidate (SmolLM2's float32
parent, its upstream Q4_1 file and q8_0/q4_0 copies, Gemma 3 270M, the three mixtures) on one item
of a multiple-choice task, MBPP and the biomedical and code perplexity tasks. SmolLM2's parent and
copies are built into the project's cache once (``quantization.real_copies``, shared with
``test_real_smollm2``). The tiny demo checks what only trained-for-the-purpose models can show
(each expert beats the generalist on its own domain), in seconds per model. The full demo is the
README's first command and is timed in ``bench/bench_demo.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medmoe_lm_eval.demo.pipeline import PPL_TASKS
from medmoe_lm_eval.demo.real_candidates import CANDIDATES as REAL
from medmoe_lm_eval.demo.report import DISCLAIMER, REAL_DISCLAIMER, expectations, perplexities
from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2

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
REAL_TASKS = ["medmoe_medmcqa", "medmoe_mbpp", "medmoe_ppl_biomedical", "medmoe_ppl_code"]


def demo(out: Path, cache: Path | None, *args: str) -> subprocess.CompletedProcess:
    # an 80-column terminal, the narrowest common one, whatever runs the suite (a tty, a pipe, a worker)
    env = {**os.environ, "COLUMNS": "80", **({"MEDMOE_CACHE": str(cache)} if cache else {})}
    cmd = [sys.executable, "-m", "medmoe_lm_eval", "demo", "--results", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)


def latest_runs(out: Path, names: list[str]) -> dict[str, Path]:
    return {c: sorted((out / c).glob("results_*.json"))[-1] for c in names}


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps lines at the terminal width


# -- the real demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from medmoe_lm_eval.real_models import ModelFileError, fetch

    try:
        fetch()
    except ModelFileError as exc:
        pytest.skip(f"the real models cannot be installed here: {exc}")
    out = tmp_path_factory.mktemp("real") / "results"
    proc = demo(out, None, "--limit", "1", "--tasks", ",".join(REAL_TASKS), "--max-gen-toks", "16")  # 16 tokens: code to judge, and fast
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, out


def test_real_demo_report_names_the_models_their_licences_and_what_the_figures_are(real_run):
    proc, _ = real_run
    text = flat(proc.stdout)
    assert flat(REAL_DISCLAIMER) in text
    assert "Apache-2.0" in text and "Gemma Terms of Use" in text and "GEMMA_TERMS.html" in text
    assert "items per candidate: 1 each of medmcqa, mbpp, ppl_biomedical, ppl_code" in text
    assert "fidelity of each copy to its parent" in text and "router scorecard, moe-router" in text
    # the tiny demo's 150-line page, plus the real report's model list with licences, pooled fidelity and router scorecard
    assert len(proc.stdout.splitlines()) <= 175 and proc.stderr == ""
    # tables fit; only a line holding a path or a command is longer, left whole for copying
    assert all(len(line) <= 80 or "/" in line for line in proc.stdout.splitlines())
    for i, name in enumerate(REAL, start=1):
        assert f"[{i}/{len(REAL)}] {name}: {len(REAL_TASKS)} tasks" in text, name


def test_real_demo_is_a_board_with_real_fidelity_and_a_router_scorecard(real_run):
    _, out = real_run
    cli = [sys.executable, "-m", "medmoe_lm_eval"]
    rows = json.loads(subprocess.run([*cli, "fidelity", "--results", str(out), "--json"], capture_output=True, text=True, timeout=300, check=True).stdout)
    kl = {r["candidate"]: r["kl_mean"] for r in rows if r["task"] == "medmoe_medmcqa"}
    assert {SMOLLM2, COPY_NAMES["gguf-q8_0"], COPY_NAMES["gguf-q4_0"]} <= set(kl)
    assert all(r["parent"] == PARENT for r in rows)
    assert kl[COPY_NAMES["gguf-q4_0"]] > 0  # a real 4-bit copy moves the answer distribution
    ppl = {r["candidate"]: r["ppl_ratio"] for r in rows if r["task"] == "medmoe_ppl_biomedical"}
    assert ppl[COPY_NAMES["gguf-q4_0"]] != 1.0
    card = subprocess.run(
        [*cli, "routing", "--results", str(out), "--candidate", "moe-router", "--json"], capture_output=True, text=True, timeout=300, check=True
    )
    card = json.loads(card.stdout)
    assert card["oracle_candidate"] == "moe-oracle" and 0.0 <= card["routing_accuracy"] <= 1.0
    assert {t["task"] for t in card["tasks"]} == set(REAL_TASKS)


def test_real_demo_generates_code_that_reaches_the_sandbox(real_run):
    _, out = real_run
    (samples,) = (out / "gemma-3-270m").glob("samples_medmoe_mbpp_*.jsonl")
    row = json.loads(samples.read_text(encoding="utf-8").splitlines()[0])
    assert row["resps"][0][0].strip()  # the model wrote something
    assert row["pass_at_1"] in (0.0, 1.0)  # and the sandbox judged it


def test_second_real_demo_run_only_evaluates(real_run, tmp_path):
    from medmoe_lm_eval.quantization.real_copies import family_dir

    built = sorted(family_dir().rglob("*.safetensors")) + sorted(family_dir().rglob("*.gguf"))
    before = {p: p.stat().st_mtime_ns for p in built}
    proc = demo(tmp_path / "results", None, "--candidates", f"{PARENT},{COPY_NAMES['gguf-q4_0']}", "--limit", "1", "--tasks", "medmoe_ppl_code")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert built and {p: p.stat().st_mtime_ns for p in built} == before
    assert "built 2 candidates in" in proc.stdout


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

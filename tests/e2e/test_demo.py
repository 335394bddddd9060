"""``medmoe demo`` on its own output: the real models (the tiny demo's tests are ``test_demo_tiny``).

The real demo runs narrowed so the suite stays fast: every default candidate (SmolLM2's float32
parent, its upstream Q4_1 file and q8_0/q4_0 copies, Gemma 3 270M, the three mixtures) on one item
of a multiple-choice task, MBPP and the biomedical and code perplexity tasks. SmolLM2's parent and
copies are built into the project's cache once (``quantization.real_copies``, shared with
``test_real_smollm2``). The full demo is the README's first command and is timed in
``bench/bench_demo.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from demo_cli import demo, flat

from medmoe_lm_eval.demo.real_candidates import CANDIDATES as REAL
from medmoe_lm_eval.demo.report import REAL_DISCLAIMER
from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # the demo child may take its own 1200 s on a busy machine

REAL_TASKS = ["medmoe_medmcqa", "medmoe_mbpp", "medmoe_ppl_biomedical", "medmoe_ppl_code"]


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

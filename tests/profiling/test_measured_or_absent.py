"""A figure is measured or absent: an answer with no output tokens gives no latency, never a fast one.

The serving probe times a task's prompts one at a time. A model that says nothing finishes
quickly, and that time is not the time to answer: it must not carry the model up a latency
ranking. Checked on a real tiny model whose answers are always empty (its final norm is zeroed,
so every logit is 0 and greedy decoding picks token 0, ``<s>``, a special token that decodes to
no text), through a real lm-eval run, the profile and the results store; and by hand on
:func:`summarise`. A multiple-choice task generates nothing, so it has no tokens/s either.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lm_eval
import pytest
from commands import write_adapter
from rich.console import Console

from medmoe_lm_eval.profiling.render import render_profile
from medmoe_lm_eval.profiling.single_stream import StreamSample, summarise
from medmoe_lm_eval.profiling.task_efficiency import task_efficiency

TASK = "medmoe_medmcqa"


@pytest.fixture(scope="module")
def silent_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with its final RMSNorm weight zeroed: every answer is ``<s>`` tokens, i.e. empty text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    with torch.no_grad():
        model.model.norm.weight.zero_()
    out = tmp_path_factory.mktemp("silent") / "silent"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out


def test_summary_leaves_empty_answers_out_of_every_latency_figure_by_hand():
    """Answers of 4, 0 and 2 tokens: latency over the 100 ms and 300 ms answers only; the 1 ms empty one is counted apart."""
    samples = [
        StreamSample("t", "e", router_s=0.001, ttft_s=0.010, e2e_s=0.100, output_tokens=4, streamed=True),  # TPOT 30 ms
        StreamSample("t", "e", router_s=0.001, ttft_s=None, e2e_s=0.001, output_tokens=0, streamed=True),  # said nothing
        StreamSample("t", "e", router_s=0.001, ttft_s=0.020, e2e_s=0.300, output_tokens=2, streamed=True),  # TPOT 280 ms
    ]
    s = summarise(samples, warmup=1, energies=[1.0, 0.01, 3.0])
    assert (s["prompts"], s["answered"], s["empty_answers"], s["reason"]) == (3, 2, 1, None)
    assert s["e2e_ms"]["n"] == 2 and s["e2e_ms"]["p50"] == pytest.approx(200.0) and s["e2e_samples_ms"] == pytest.approx([100.0, 300.0])
    assert s["ttft_ms"]["p50"] == pytest.approx(15.0) and s["tpot_ms"]["p50"] == pytest.approx((30.0 + 280.0) / 2)
    assert s["energy_per_request_j"] == pytest.approx(2.0)  # (1 + 3) / 2: the empty answer's joules left out too


def test_a_probe_with_no_answer_has_no_latency_and_says_why():
    s = summarise([StreamSample("t", "e", 0.001, None, 0.002, 0, streamed=True)] * 2, warmup=1, energies=[0.1, 0.1])
    assert s["e2e_ms"]["p50"] is None and s["e2e_samples_ms"] == [] and s["energy_per_request_j"] is None
    assert s["reason"] == "no output tokens in any of the 2 probe answers: no latency measured"
    figures = task_efficiency({"single_stream": {"t": {**s, "streamed": True}}}, "t", 2)
    assert math.isnan(figures["latency_ms_p50"]) and math.isnan(figures["ttft_ms_p50"]) and figures["latency_samples_ms"] is None
    console = Console(record=True, width=300, color_system=None)
    for part in render_profile({"enabled": True, "schema": 2, "single_stream": {"t": s}}):
        console.print(part)
    (row,) = [line for line in console.export_text().splitlines() if line.startswith("│ t ")]
    assert "0 of 2" in row and "0.0" not in row  # medmoe profile show: nothing answered, no latency shown


def test_a_profile_written_before_empty_answers_were_left_out_reads_as_no_latency():
    """A results folder from an older version: a 0.5 ms p50 over answers of 0 tokens in all is not a latency."""
    old = {"streamed": True, "prompts": 4, "output_tokens": 0, "e2e_ms": {"p50": 0.5}, "ttft_ms": {"p50": None}, "e2e_samples_ms": [0.4, 0.5, 0.6, 0.5]}
    figures = task_efficiency({"single_stream": {"t": old}}, "t", 4)
    assert math.isnan(figures["latency_ms_p50"]) and math.isnan(figures["latency_ms_p95"]) and figures["latency_samples_ms"] is None
    answered = task_efficiency({"single_stream": {"t": {**old, "output_tokens": 12}}}, "t", 4)
    assert answered["latency_ms_p50"] == 0.5 and answered["latency_samples_ms"] == (0.4, 0.5, 0.6, 0.5)


@pytest.mark.slow
def test_real_model_that_says_nothing_gets_no_latency_in_profile_or_store(tmp_path, silent_model, task_manager):
    from medmoe_lm_eval.store.results import load_results

    adapter = write_adapter(tmp_path, "silent", {"kind": "single", "experts": [{"name": "m", "model": str(silent_model), "device": "cpu"}]})
    results = lm_eval.simple_evaluate(
        model="medmoe",
        model_args={"adapter": str(adapter), "probe": 2},
        tasks=[TASK],
        task_manager=task_manager,
        limit=3,
        batch_size=1,
        device="cpu",
        bootstrap_iters=0,
    )
    profile = results["config"]["medmoe_profile"]
    stream = profile["single_stream"][TASK]
    assert (stream["prompts"], stream["answered"], stream["empty_answers"], stream["output_tokens"]) == (2, 0, 2, 0)
    assert stream["e2e_ms"]["p50"] is None and stream["e2e_samples_ms"] == [] and "no latency measured" in stream["reason"]
    assert stream["router_ms"]["n"] == 2  # what was measured (routing) is still there
    assert profile["tasks"][TASK]["generated_tokens_per_s"] is None  # multiple choice: nothing was generated
    assert profile["tasks"][TASK]["requests_per_s"] > 0
    out = tmp_path / "results" / "silent"
    out.mkdir(parents=True)
    (out / "results_2026-01-01T00-00-00.json").write_text(json.dumps(results, default=str), encoding="utf-8")
    row = load_results(tmp_path / "results").frame.query("metric == 'acc'").iloc[0]
    assert math.isnan(row["latency_ms_p50"]) and math.isnan(row["generated_tokens_per_s"]) and row["requests_per_s"] > 0

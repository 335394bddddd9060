"""Efficiency figures that mean what their names say, on real lm-eval runs of tiny models.

A top-2 mixture with a shared expert sends every request to three experts: the profile counts
unique requests and expert calls apart. A run resumed with ``--use_cache`` serves only the
uncached requests: its counts, rates and joules per correct answer cover those only, and the
results store says which share came from the cache. The serving probe measures single-stream
latency through the backend's streaming path; ``probe=0`` turns it off.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lm_eval
import numpy as np
import pytest
from commands import write_adapter
from lm_eval.tasks import TaskManager

from medmoe_lm_eval.harness.config import ConfigError
from medmoe_lm_eval.harness.probe import parse_prompts, probe_prompts
from medmoe_lm_eval.profiling.served import cache_share
from medmoe_lm_eval.profiling.single_stream import StreamSample, summarise

pytestmark = pytest.mark.slow
TASK = "medmoe_medmcqa"  # four answer options: four loglikelihood requests per document
KEYWORDS = {"biomedical": ["patient", "disease", "drug"], "legal": ["court", "contract"], "code": ["function", "python"]}


def _evaluate(adapter: Path, tm: TaskManager, limit: int, **kw) -> dict:
    model_args = {"adapter": str(adapter), **kw.pop("model_args", {})}
    return lm_eval.simple_evaluate(
        model="medmoe", model_args=model_args, tasks=[TASK], task_manager=tm, limit=limit, batch_size=1, device="cpu", bootstrap_iters=0, **kw
    )


def test_top2_with_shared_expert_counts_unique_requests_and_expert_calls(tmp_path, tiny_experts, tiny_model_dir, task_manager):
    """3 documents x 4 options = 12 requests; each goes to the top 2 routed experts and the shared one: 36 calls."""
    experts = [{"name": d[:3], "domain": d, "model": str(p), "device": "cpu"} for d, p in tiny_experts.items()]
    experts.append({"name": "gen", "model": str(tiny_model_dir), "device": "cpu"})
    adapter = write_adapter(
        tmp_path,
        "top2-shared",
        {
            "kind": "moe",
            "experts": experts,
            "router": {"type": "keywords", "top_k": 2, "keywords": KEYWORDS},
            "shared_expert": {"name": "gen", "weight": 0.2},
        },
    )
    profile = _evaluate(adapter, task_manager, limit=3, model_args={"probe": 2})["config"]["medmoe_profile"]
    total, task = profile["total"], profile["tasks"][TASK]
    assert (total["requests"], total["expert_calls"]) == (12, 36)
    assert (task["requests"], task["expert_calls"], task["docs"]) == (12, 36, 3)
    assert total["requests_per_s"] == pytest.approx(12 / total["wall_s"]) and total["expert_calls_per_s"] == pytest.approx(36 / total["wall_s"])
    calls = {name: entry["requests"] for name, entry in profile["experts"].items()}
    assert calls.pop("gen") == 12 and sum(calls.values()) == 24 and max(calls.values()) <= 12  # two routed experts each
    assert profile["served"]["requests"] == 12 and profile["served"]["cache"]["attached"] is False
    stream = profile["single_stream"][TASK]
    assert stream["prompts"] == 2 and stream["warmup"] == 1 and set(stream["experts"]) <= set(calls)  # generation: a top expert
    assert stream["streamed"] is True and stream["e2e_ms"]["n"] == 2
    assert 0 < stream["router_ms"]["p50"] <= stream["ttft_ms"]["p50"] <= stream["e2e_ms"]["p50"]
    # what probing cost: the two measured answers and the warm-up, so more than the measured ones alone
    assert stream["probe_s"] * 1000 > stream["e2e_ms"]["mean"] * 2
    # the measurements behind the p50 (warm-up left out), for the ranking's intervals
    assert len(stream["e2e_samples_ms"]) == 2 and float(np.median(stream["e2e_samples_ms"])) == pytest.approx(stream["e2e_ms"]["p50"])


def test_resumed_run_counts_only_what_it_served_and_says_what_came_from_the_cache(tmp_path, tiny_model_dir, task_manager):
    """A run over 2 documents, resumed over 4 with ``--use_cache``, then repeated: 0%, 50% and 100% from the cache."""
    from medmoe_lm_eval.store.results import load_results

    adapter = write_adapter(tmp_path, "cached", {"kind": "single", "experts": [{"name": "m", "model": str(tiny_model_dir), "device": "cpu"}]})
    cache = str(tmp_path / "cache" / "run")
    runs = [_evaluate(adapter, task_manager, limit=n, use_cache=cache, model_args={"probe": 0}) for n in (2, 4, 4)]
    profiles = [r["config"]["medmoe_profile"] for r in runs]
    assert [p["served"]["cache"]["attached"] for p in profiles] == [True] * 3
    assert [p["served"]["requests"] for p in profiles] == [8, 8, 0]  # the resumed run served only the 2 new documents
    assert [p["tasks"].get(TASK, {}).get("docs", 0) for p in profiles] == [2, 2, 0]
    assert [cache_share(p, TASK, 2 if i == 0 else 4) for i, p in enumerate(profiles)] == [0.0, 0.5, 1.0]
    assert all(p["single_stream"] is None for p in profiles)  # probe=0: no probe
    out = tmp_path / "results" / "cached"
    out.mkdir(parents=True)
    data = {k: v for k, v in runs[1].items() if k != "samples"}  # what lm-eval writes as results_*.json
    (out / "results_2026-01-01T00-00-00.json").write_text(json.dumps(data, default=str), encoding="utf-8")
    row = load_results(tmp_path / "results").frame.query("metric == 'acc'").iloc[0]
    assert (row["n_samples"], row["requests_served"], row["cache_share"]) == (4, 8, 0.5)
    assert math.isnan(row["latency_ms_p50"]) and row["batch_latency_ms_p50"] > 0  # no probe: no single-stream figure


def test_probe_prompts_take_one_warmup_and_the_tasks_own_prompts():
    from lm_eval.api.instance import Instance

    gen = [Instance("generate_until", {}, (f"Q{i}", {"until": ["\n"], "max_gen_toks": 5}), 0, ("t", i, 1)) for i in range(5)]
    picked = probe_prompts("generate_until", gen, 2)["t"]
    assert [p[:2] for p in picked] == [(0, "Q0"), (1, "Q1"), (2, "Q2")] and picked[0][2] == {"until": ["\n"], "max_gen_toks": 5}
    options = [Instance("loglikelihood", {}, ("Question: Q?\nAnswer:", f" {c}"), c, ("mc", 7, 1)) for c in "ABCD"]
    (only,) = probe_prompts("loglikelihood", options, 4)["mc"]  # four options, one document, one prompt
    assert only[:2] == (7, "Question: Q?\nAnswer:") and only[2]["max_gen_toks"] == 16
    assert probe_prompts("loglikelihood_rolling", [Instance("loglikelihood_rolling", {}, ("text",), 0, ("p", 0, 1))], 4) == {}
    assert parse_prompts(None) == 6 and parse_prompts("0") == 0  # six: the fewest whose [min, max] covers the median at 95%
    with pytest.raises(ConfigError, match="probe"):
        parse_prompts("many")


def test_single_stream_summary_by_hand():
    """TPOT = (E2E - TTFT) / (tokens - 1), MLPerf's definition; percentiles by linear interpolation."""
    samples = [
        StreamSample("t", "e", router_s=0.001, ttft_s=0.011, e2e_s=0.111, output_tokens=11, streamed=True),  # TPOT 10 ms
        StreamSample("t", "e", router_s=0.003, ttft_s=0.033, e2e_s=0.233, output_tokens=5, streamed=True),  # TPOT 50 ms
        StreamSample("t", "e", router_s=0.002, ttft_s=0.022, e2e_s=0.022, output_tokens=1, streamed=True),  # no TPOT
    ]
    s = summarise(samples, warmup=1, energies=[0.5, 1.0, 1.5])
    assert s["ttft_ms"]["p50"] == pytest.approx(22.0) and s["e2e_ms"]["p50"] == pytest.approx(111.0)
    assert s["e2e_ms"]["p95"] == pytest.approx(111.0 + 0.9 * (233.0 - 111.0))
    assert s["tpot_ms"]["n"] == 2 and s["tpot_ms"]["p50"] == pytest.approx(30.0)
    assert s["router_ms"]["p50"] == pytest.approx(2.0) and s["output_tokens"] == 17 and s["energy_per_request_j"] == pytest.approx(1.0)
    assert summarise([StreamSample("t", "e", 0.0, 0.2, 0.2, 3, streamed=False)], 1)["streamed"] is False


def test_a_failing_probe_is_noted_and_never_fails_the_run_injected():
    """A backend whose streaming path raises: the probe records why in the profile's notes."""
    from medmoe_lm_eval.harness.probe import ServingProbe
    from medmoe_lm_eval.profiling.profiler import Profiler

    class Route:
        top = "e"

    class Router:
        def route(self, texts, tasks, keys):
            return [Route() for _ in texts]

    class Broken:
        streams = True

        def stream(self, prompt, gen_kwargs):
            raise RuntimeError("server closed the stream")
            yield ""  # pragma: no cover - makes this a generator

    from lm_eval.api.instance import Instance

    prof = Profiler(interval_ms=20)
    probe = ServingProbe(Router(), lambda name: Broken(), prof, prompts=2)
    probe.served("generate_until", [Instance("generate_until", {}, ("Q", {"until": ["\n"]}), 0, ("t", 0, 1))])
    report = prof.report()
    assert report["single_stream"] is None and report["served"]["requests"] == 1
    assert "single-stream probe of t failed: RuntimeError: server closed the stream" in report["sampler"]["notes"]

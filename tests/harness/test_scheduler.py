"""Experts on different servers serve at once; results and the residency limit stay as they were.

Two remote experts, each on its own scripted server (injected: a latency-bound server that
answers every request after a fixed delay, which is what a busy serving cluster looks like from
the client), behind a uniform router: every request goes to both. The servers record when they
were busy, so the tests see overlap directly instead of timing the run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from lm_eval.api.instance import Instance
from scripted_server import MODELS, echo_body, overlapping, scripted_server

from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.model import MedMoELM
from medmoe_lm_eval.harness.scheduler import chunks, placement_groups
from medmoe_lm_eval.profiling.stats import overlap_summary

DELAY_S = 0.12


def latency_bound(tokenizer: Path, delay_s: float = DELAY_S, fail: bool = False):
    """``respond`` for a server that answers each completion after ``delay_s`` (or fails with a 500)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer))

    def respond(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        time.sleep(delay_s)
        if fail:
            return 500, '{"error": "boom"}'
        return 200, echo_body(len(tok(body["prompt"])["input_ids"]))

    return respond


def ensemble(folder: Path, tokenizer: Path, urls: dict[str, str], **extra) -> str:
    experts = [
        {"name": n, "backend": "remote", "model": "tiny", "base_url": u, "tokenizer": str(tokenizer), "max_length": 256, "concurrency": 1, "max_retries": 0}
        for n, u in urls.items()
    ]
    data = {"name": "two-servers", "kind": "moe", "experts": experts, "router": {"type": "uniform"}, **extra}
    path = folder / "two-servers.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def requests(n: int = 6) -> list[Instance]:
    pairs = [(f"The patient presented with case {i}", " fever and cough.") for i in range(n)]
    return [Instance("loglikelihood", {}, pair, i, ("medmoe_medmcqa", i, 1)) for i, pair in enumerate(pairs)]


def run(folder: Path, tokenizer: Path, concurrent: bool, **extra) -> tuple[list, dict, dict]:
    """Loglikelihoods, the two servers' busy intervals and the profile of one run."""
    with scripted_server(latency_bound(tokenizer)) as (url_a, a), scripted_server(latency_bound(tokenizer)) as (url_b, b):
        lm = MedMoELM(adapter=ensemble(folder, tokenizer, {"a": url_a, "b": url_b}, **extra), device="cpu", concurrent=concurrent)
        try:
            out = lm.loglikelihood(requests(), disable_tqdm=True)
            info = lm.get_model_info()
        finally:
            lm.close()
    return out, {"a": a["intervals"], "b": b["intervals"]}, info


def test_experts_on_two_servers_serve_at_once_injected(tmp_path, tiny_model_dir):
    together, busy, info = run(tmp_path, tiny_model_dir, concurrent=True)
    alone, busy_seq, _ = run(tmp_path, tiny_model_dir, concurrent=False)
    assert together == alone  # same numbers, same order
    assert overlapping(busy["a"], busy["b"]) > 2 * DELAY_S
    assert overlapping(busy_seq["a"], busy_seq["b"]) == 0.0
    profile = info["medmoe_profile"]
    own = {n: profile["experts"][n]["wall_s"] for n in "ab"}
    assert all(s >= 6 * DELAY_S for s in own.values())  # each expert's own busy time, not shared
    serving = profile["serving"]
    assert serving["busy_s"] == pytest.approx(profile["total"]["wall_s"]) and serving["busy_s"] < sum(own.values())
    assert serving["parallelism"] > 1.3
    assert {n: info["medmoe"]["experts"][n]["batch"]["effective"] for n in "ab"} == {"a": {"loglikelihood": 1}, "b": {"loglikelihood": 1}}


def test_residency_limit_of_one_keeps_experts_taking_turns_injected(tmp_path, tiny_model_dir):
    # the serving probe would load the top expert once more after both have served: off, so the
    # loads counted are the serving ones
    out, busy, info = run(tmp_path, tiny_model_dir, concurrent=True, memory={"max_resident": 1}, profile={"probe_prompts": 0})
    assert len(out) == 6 and overlapping(busy["a"], busy["b"]) == 0.0
    assert info["medmoe"]["expert_loads"] == {"a": 1, "b": 1}


def test_a_failing_server_stops_the_run_and_is_named_injected(tmp_path, tiny_model_dir):
    with scripted_server(latency_bound(tiny_model_dir)) as (good, _), scripted_server(latency_bound(tiny_model_dir, fail=True)) as (bad, _):
        lm = MedMoELM(adapter=ensemble(tmp_path, tiny_model_dir, {"a": good, "b": bad}), device="cpu")
        try:
            with pytest.raises(BackendError, match=r"expert 'b': .*HTTP 500") as err:
                lm.loglikelihood(requests(), disable_tqdm=True)
        finally:
            lm.close()
    assert bad in str(err.value) and "\n" not in str(err.value)


def test_placement_groups_keep_first_appearance_order():
    where = {"a": "remote:x", "b": "cpu", "c": "remote:x", "d": "cuda:1"}
    assert placement_groups(["a", "b", "c", "d"], where.__getitem__) == [["a", "c"], ["b"], ["d"]]


def test_chunks_keep_documents_together_longest_first():
    reqs = [
        Instance("loglikelihood", {}, (ctx, cont), i, ("t", doc, 1))
        for i, (doc, ctx, cont) in enumerate([(0, "ab", "c"), (0, "ab", "d"), (1, "abcdef", "g"), (2, "a", "b")])
    ]
    assert list(chunks([0, 1, 2, 3], reqs, 2)) == [("t", [2, 0, 1]), ("t", [3])]


def test_overlap_summary_hand_computed():
    # a busy 0-4 s, b busy 2-5 s: union 5 s, sum 7 s, 2 s counted twice
    assert overlap_summary({"a": 4.0, "b": 3.0}, 5.0) == {"busy_s": 5.0, "sum_of_groups_s": 7.0, "overlap_s": 2.0, "parallelism": 1.4}
    assert overlap_summary({}, 0.0)["parallelism"] is None

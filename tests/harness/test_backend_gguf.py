"""The in-process GGUF backend against lm-eval's own ``HFLM`` on the same tiny model.

The f32 GGUF is written by our converter from the HF checkpoint, so tokenizer, loglikelihoods,
greedy flags, rolling windows, truncation and generations must match HFLM's (within 1e-3).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from backend_fixtures import ROLLING, gen_requests, greedy_pairs, ll_requests, rolling_requests

from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.config import ConfigError, GGUFExpert, load_adapter

pytestmark = pytest.mark.gguf
TOL = 1e-3


@pytest.fixture(scope="module")
def hflm(trained):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(trained), device="cpu", batch_size=1, dtype="float32")


def gguf_backend(path: Path, **fields):
    spec = GGUFExpert(name="tiny-gguf", backend="gguf", model=str(path), n_ctx=512, n_threads=1, device="cpu", **fields)
    backend = make_backend(spec, device="cpu")
    backend.load()
    return backend


@pytest.fixture(scope="module")
def backend(f32_gguf):
    b = gguf_backend(f32_gguf)
    yield b
    b.close()


def test_gguf_tokenizer_is_the_hf_tokenizer(backend, hflm):
    """The ids HFLM feeds its model (``tok_encode``: no second BOS on a text that starts with one)."""
    samples = [
        "The patient presented with fever",
        "def f(x):\n\treturn x**2  # café",
        "héllo  wörld 12345 'll 's",
        "<s> starts",
        " lead",
        "日本語 ✓",
        "a\n\n\nb   c",
    ]
    for text in samples:
        assert backend.codec.encode(text) == hflm.tok_encode(text), text
        assert backend.codec.encode(text, add_special=False) == hflm.tok_encode(text, add_special_tokens=False), text


def test_loglikelihood_matches_lmeval_hf(backend, hflm):
    prompts = ["The patient presented with", "def add(a, b):", "The court held"]
    requests = ll_requests() + ll_requests(greedy_pairs(hflm, prompts))
    ours, ref = backend.loglikelihood(requests), hflm.loglikelihood(requests)
    for req, (lp, greedy), (lp_ref, greedy_ref) in zip(requests, ours, ref):
        assert abs(lp - lp_ref) < TOL, req.args
        assert greedy == greedy_ref, req.args
    assert any(g for _, g in ref), "the greedy requests should contain at least one greedy continuation"


def test_rolling_matches_lmeval_hf(backend, hflm):
    requests = rolling_requests([*ROLLING, "short text"])
    for ours, ref in zip(backend.loglikelihood_rolling(requests), hflm.loglikelihood_rolling(requests)):
        assert abs(ours - ref) < TOL


def test_generate_until_matches_lmeval_hf_and_honours_limits(backend, hflm):
    prompts = ["The patient presented with", "Question: What is the dose?\nAnswer:"]
    for until, n in (([], 12), (["\n", "."], 30), (" ", 20)):
        requests = gen_requests(prompts, until, n)
        ours = backend.generate_until(requests)
        assert ours == hflm.generate_until(gen_requests(prompts, until, n))
        for text in ours:
            assert backend.count_tokens(text) <= n
            for stop in [until] if isinstance(until, str) else until:
                assert stop not in text


def test_long_context_left_truncated_like_hflm(f32_gguf, trained):
    """A context longer than the window loses tokens on the left, exactly as HFLM's does."""
    from lm_eval.models.huggingface import HFLM

    small = gguf_backend(f32_gguf, max_length=24)
    try:
        ref = HFLM(pretrained=str(trained), device="cpu", batch_size=1, dtype="float32", max_length=24)
        long_ctx = "The patient presented with fever and cough for three days and was given fluids. " * 3
        requests = ll_requests([(long_ctx, " The dose was doubled."), ("Short", " context")])
        for (lp, greedy), (lp_ref, greedy_ref) in zip(small.loglikelihood(requests), ref.loglikelihood(requests)):
            assert math.isfinite(lp) and lp < 0
            assert abs(lp - lp_ref) < TOL and greedy == greedy_ref
        rolled = small.loglikelihood_rolling(rolling_requests([long_ctx]))
        assert abs(rolled[0] - ref.loglikelihood_rolling(rolling_requests([long_ctx]))[0]) < TOL
        with pytest.raises(BackendError, match="exceeds the 24-token window"):
            small.loglikelihood(ll_requests([("a", long_ctx)]))
        with pytest.raises(BackendError, match="max_gen_toks=30 leaves no room"):
            small.generate_until(gen_requests(["a"], [], 30))
    finally:
        small.close()


def test_info_reports_file_type_and_version(backend, f32_gguf):
    from medmoe_lm_eval.harness.backends.quant_info import quantization_info

    info = backend.info()
    assert info["quantization"]["type"] == "F32" and info["architecture"] == "llama"
    assert info["llama_cpp_python"] and info["file_bytes"] == f32_gguf.stat().st_size
    assert quantization_info(f32_gguf) == {"method": "gguf", "bits": 32, "group_size": None, "type": "F32", "file_type": 0}
    assert info["quantization"]["description"] == "all F32"


def test_missing_gguf_named_by_adapter_check(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("name: x\nkind: single\nexperts:\n  - {name: e, backend: gguf, model: ./nope.gguf}\n")
    with pytest.raises(ConfigError, match=r"experts\[e\]\.model: model file './nope.gguf' does not exist"):
        load_adapter(path)


@pytest.mark.parametrize("damage", ["truncated", "not_gguf", "missing"])
def test_damaged_gguf_is_one_line_error(f32_gguf, tmp_path, damage):
    bad = tmp_path / "bad.gguf"
    if damage == "truncated":
        bad.write_bytes(f32_gguf.read_bytes()[: f32_gguf.stat().st_size // 2])
        expected = "truncated or corrupt"
    elif damage == "not_gguf":
        bad.write_bytes(b"PK\x03\x04 a zip file, not a model")
        expected = "is not a GGUF file"
    else:
        expected = "does not exist"
    with pytest.raises(BackendError, match=expected) as err:
        gguf_backend(bad)
    assert "\n" not in str(err.value) and "tiny-gguf" in str(err.value)


def test_stream_yields_the_same_answer_piece_by_piece(backend):
    prompt = "The patient presented with"
    pieces = list(backend.stream(prompt, {"until": ["\n"], "max_gen_toks": 12}))
    assert len(pieces) > 1
    assert "".join(pieces) == backend.generate_until(gen_requests([prompt], ["\n"], 12))[0]


def test_models_load_without_extra_buffer_types():
    """llama.cpp's AMX repacking kernels crash q8_0/q4_0 models on AMX CPUs; loads turn them off."""
    import llama_cpp.llama_cpp as low

    from medmoe_lm_eval.harness.backends.llama_compat import without_extra_buffers

    assert low.llama_model_default_params().use_extra_bufts is True
    with without_extra_buffers():
        assert low.llama_model_default_params().use_extra_bufts is False
    assert low.llama_model_default_params().use_extra_bufts is True


def test_busy_cpus_counts_what_runs_now_not_the_minute_before():
    from medmoe_lm_eval.harness.backends.gguf import busy_cpus

    # /proc/loadavg: 1-, 5-, 15-minute averages, then running/total threads (this process among the running)
    assert busy_cpus("1.90 1.20 0.80 1/83 2999") == 0  # a run that just ended still weighs on the average: not busy now
    assert busy_cpus("0.10 0.10 0.10 3/90 100") == 2  # two others runnable right now

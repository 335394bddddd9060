"""The remote backend against a real ``llama_cpp.server`` on 127.0.0.1, and its failure modes.

Parity: one fp32 tiny model, the same requests, four paths (medmoe ``hf``, in-process ``gguf``,
``remote`` against the server, lm-eval's own ``HFLM``) agree within 1e-3 with equal greedy flags.
Failures that a real server does not produce on demand (slow, malformed JSON, no logprobs, 5xx,
concurrency) are injected by a tiny scripted HTTP server; those tests say so in their names.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from backend_fixtures import gen_requests, greedy_pairs, ll_requests, rolling_requests
from llama_server import free_port, llama_server
from scripted_server import MODELS, echo_body, scripted_server

from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.config import GGUFExpert, HFExpert, RemoteExpert

pytestmark = pytest.mark.gguf
TOL = 1e-3
KEY_ENV = "MEDMOE_TEST_REMOTE_KEY"
SECRET = "sk-local-test-0123456789"


@pytest.fixture(scope="module")
def server(f32_gguf) -> Iterator[str]:
    with llama_server(f32_gguf, n_ctx=512, api_key=SECRET) as (url, _proc):
        yield url


def remote(url: str, tokenizer: str | None = None, **fields):
    fields = {"concurrency": 2, "timeout_s": 30.0, "max_retries": 1, **fields}
    spec = RemoteExpert(name="tiny-remote", backend="remote", model="tiny", base_url=url, tokenizer=tokenizer, **fields)
    backend = make_backend(spec, device="cpu")
    backend.load()
    return backend


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def test_four_paths_agree(server, trained, f32_gguf, keyed):
    """hf (medmoe), gguf in-process, remote over HTTP and lm-eval's HFLM: same numbers."""
    from lm_eval.models.huggingface import HFLM

    ref = HFLM(pretrained=str(trained), device="cpu", batch_size=1, dtype="float32")
    requests = ll_requests()[:-1] + ll_requests(greedy_pairs(ref, ["The patient presented with", "def add(a, b):", "The court held"]))
    expected = ref.loglikelihood(requests)
    assert any(g for _, g in expected)
    backends = {
        "hf": make_backend(HFExpert(name="tiny-hf", model=str(trained), dtype="float32", device="cpu"), device="cpu"),
        "gguf": make_backend(GGUFExpert(name="tiny-gguf", backend="gguf", model=str(f32_gguf), n_ctx=512, n_threads=1), device="cpu"),
        "remote": remote(server, str(trained), api_key_env=KEY_ENV),
    }
    prompts = ["The patient presented with", "Question: Which drug?\nAnswer:"]
    expected_gen = ref.generate_until(gen_requests(prompts, ["\n"], 16))
    for name, backend in backends.items():
        backend.load()
        try:
            for req, (lp, greedy), (lp_ref, greedy_ref) in zip(requests, backend.loglikelihood(requests), expected):
                assert abs(lp - lp_ref) < TOL, (name, req.args)
                assert greedy == greedy_ref, (name, req.args)
            assert backend.generate_until(gen_requests(prompts, ["\n"], 16)) == expected_gen, name
        finally:
            backend.close()


def test_server_tokenizer_gives_the_same_numbers(server, trained, keyed):
    """Without a ``tokenizer`` field the server's ``/extras/tokenize`` counts the tokens."""
    with_hf, with_server = remote(server, str(trained), api_key_env=KEY_ENV), remote(server, None, api_key_env=KEY_ENV)
    requests = ll_requests()[:-1]
    assert with_server.loglikelihood(requests) == with_hf.loglikelihood(requests)
    assert with_server.count_tokens("The patient presented with fever") == with_hf.count_tokens("The patient presented with fever")
    assert with_server.info()["tokenizer"] == "server (llama-cpp-python)"


def test_first_token_after_bos_refused_not_zeroed(server, trained, keyed):
    """llama-cpp-python's server leaves out the first prompt logprob: a clear error, never 0."""
    backend = remote(server, str(trained), api_key_env=KEY_ENV)
    for call, request in ((backend.loglikelihood, ll_requests([("", "fever")])), (backend.loglikelihood_rolling, rolling_requests(["some text"]))):
        with pytest.raises(BackendError, match="no logprob for the first prompt token") as err:
            call(request)
        assert "\n" not in str(err.value)


def test_long_context_truncated_at_token_boundary(server, trained, keyed, caplog):
    backend = remote(server, str(trained), api_key_env=KEY_ENV, max_length=40)
    long_ctx = "The patient presented with fever and cough for three days and was given fluids. " * 4
    [(lp, _)] = backend.loglikelihood(ll_requests([(long_ctx, " The dose was doubled.")]))
    assert lp < 0 and "keeping the last 38" in caplog.text
    [text] = backend.generate_until(gen_requests([long_ctx], ["\n"], 8))
    assert isinstance(text, str) and "keeping the last" in caplog.text


def test_api_key_read_from_env_and_never_reported(server, trained, monkeypatch, caplog):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(BackendError, match=f"environment variable {KEY_ENV} \\(api_key_env\\) is not set"):
        remote(server, str(trained), api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    with pytest.raises(BackendError, match="HTTP 401 unauthorized") as err:
        remote(server, str(trained), api_key_env=KEY_ENV)
    assert "wrong-key" not in str(err.value)
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = remote(server, str(trained), api_key_env=KEY_ENV)
    backend.loglikelihood(ll_requests()[:1])
    info = json.dumps(backend.info())
    assert SECRET not in info and SECRET not in caplog.text and backend.info()["served_model"] == "tiny"


def test_server_down_is_one_line_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(BackendError, match=r"connection failed .* after 2 attempt\(s\)") as err:
        remote(url, None, max_retries=1)
    assert time.monotonic() - start < 10 and url in str(err.value) and "\n" not in str(err.value)


# -- injected failures -------------------------------------------------------------------------


def test_remote_slow_server_times_out_injected(trained):
    def slow(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        time.sleep(2.0)
        return 200, echo_body(3)

    with scripted_server(slow) as (url, _state):
        backend = remote(url, str(trained), timeout_s=0.3, max_retries=1)
        with pytest.raises(BackendError, match=r"no answer within timeout_s=0.3s after 2 attempt"):
            backend.loglikelihood(ll_requests()[:1])


@pytest.mark.parametrize(
    "body, message",
    [
        ("<html>not json</html>", "malformed JSON in the response"),
        (json.dumps({"choices": [{"text": "x", "index": 0}]}), r"no choices\[0\]\.logprobs"),
        (json.dumps({"error": "model not loaded"}), r"no choices\[0\]\.logprobs"),
    ],
    ids=["malformed_json", "no_logprobs", "error_object"],
)
def test_remote_bad_responses_injected(trained, body, message):
    with scripted_server(lambda h, b: (200, MODELS) if h.path == "/v1/models" else (200, body)) as (url, _):
        backend = remote(url, str(trained), max_retries=0)
        with pytest.raises(BackendError, match=message) as err:
            backend.loglikelihood(ll_requests()[:1])
        assert "\n" not in str(err.value)


def test_remote_retries_5xx_with_backoff_injected(trained):
    """Two 503s, then an answer: the request succeeds on the third attempt."""
    from medmoe_lm_eval.harness.backends.codecs import HFCodec

    codec = HFCodec(str(trained))
    context, continuation = ll_requests()[0].args
    n_prompt = len(codec.encode(context + continuation))

    def flaky(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        flaky.posts += 1
        return (503, '{"error": "overloaded"}') if flaky.posts <= 2 else (200, echo_body(n_prompt))

    flaky.posts = 0
    with scripted_server(flaky) as (url, _):
        backend = remote(url, str(trained), max_retries=2)
        [(lp, greedy)] = backend.loglikelihood(ll_requests()[:1])
    n_cont = n_prompt - len(codec.encode(context))
    assert flaky.posts == 3 and lp == pytest.approx(-1.0 * n_cont) and greedy


def _n_prompt(trained) -> int:
    from medmoe_lm_eval.harness.backends.codecs import HFCodec

    return len(HFCodec(str(trained)).encode("".join(ll_requests()[0].args)))


def test_remote_retry_after_is_honoured_injected(trained):
    """A 429 asking for one second: urllib3 waits that long, then the request succeeds."""
    n_prompt, posts = _n_prompt(trained), []

    def limited(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        posts.append(time.monotonic())
        return (429, '{"error": "slow down"}', {"Retry-After": "1"}) if len(posts) == 1 else (200, echo_body(n_prompt))

    with scripted_server(limited) as (url, _):
        [(lp, _greedy)] = remote(url, str(trained), max_retries=2).loglikelihood(ll_requests()[:1])
    assert len(posts) == 2 and posts[1] - posts[0] >= 0.95 and lp < 0


def test_remote_retry_after_past_the_deadline_gives_up_at_once_injected(trained):
    """An hour's ``Retry-After`` is capped, and even capped it would end past ``deadline_s``: no retry."""
    with scripted_server(lambda h, b: (200, MODELS) if h.path == "/v1/models" else (503, "{}", {"Retry-After": "3600"})) as (url, state):
        backend = remote(url, str(trained), max_retries=5, deadline_s=5.0)
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"HTTP 503 .* after 1 attempt\(s\)"):
            backend.loglikelihood(ll_requests()[:1])
    assert time.monotonic() - start < 3.0 and state["calls"] == 2  # /v1/models, then one completion


def test_remote_deadline_ends_the_retries_injected(trained):
    """A server that is always overloaded: backoff retries stop at the deadline, not at max_retries."""
    with scripted_server(lambda h, b: (200, MODELS) if h.path == "/v1/models" else (503, '{"error": "overloaded"}')) as (url, state):
        backend = remote(url, str(trained), max_retries=50, deadline_s=2.0)
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"HTTP 503 .* after (\d+) attempt\(s\).*deadline_s") as err:
            backend.loglikelihood(ll_requests()[:1])
    elapsed, posts = time.monotonic() - start, state["calls"] - 1
    assert elapsed < 4.0 and 2 <= posts < 51 and f"after {posts} attempt(s)" in str(err.value)


def test_remote_concurrency_is_bounded_injected(trained):
    from medmoe_lm_eval.harness.backends.codecs import HFCodec

    codec = HFCodec(str(trained))

    def slowish(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        time.sleep(0.15)
        return 200, echo_body(len(codec.encode(body["prompt"])))

    requests = ll_requests([("The patient presented with", f" case {i}") for i in range(8)])
    with scripted_server(slowish) as (url, state):
        results = remote(url, str(trained), concurrency=3).loglikelihood(requests)
    assert len(results) == 8 and state["max_in_flight"] == 3


# -- whole lm-eval runs through the medmoe model ---------------------------------------------


def _adapter(folder: Path, name: str, expert: dict) -> str:
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "kind": "single", "experts": [{"name": name, **expert}]}), encoding="utf-8")
    return str(path)


def _loglikelihoods(results: dict, task: str) -> list[float]:
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    return [float(r[0][0] if isinstance(r[0], (list, tuple)) else r[0]) for s in samples for r in s["resps"]]


@pytest.mark.slow
def test_lm_eval_runs_agree_across_backends(tmp_path, server, trained, f32_gguf, keyed):
    """``simple_evaluate(model="medmoe")`` on a bundled task: hf, gguf and remote adapters agree."""
    import lm_eval

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager

    register()
    tm = task_manager()
    adapters = {
        "hf": _adapter(tmp_path, "hf", {"model": str(trained), "dtype": "float32", "device": "cpu"}),
        "gguf": _adapter(tmp_path, "gguf", {"backend": "gguf", "model": str(f32_gguf), "n_ctx": 512, "n_threads": 1}),
        "remote": _adapter(
            tmp_path, "remote", {"backend": "remote", "model": "tiny", "base_url": server, "api_key_env": KEY_ENV, "tokenizer": str(trained), "max_length": 512}
        ),
    }
    run = {
        name: lm_eval.simple_evaluate(
            model="medmoe",
            model_args={"adapter": path, "log_dir": str(tmp_path / "logs")},
            tasks=["medmoe_medmcqa"],
            task_manager=tm,
            limit=4,
            log_samples=True,
            batch_size=1,
            device="cpu",
            bootstrap_iters=0,
        )
        for name, path in adapters.items()
    }
    ref = _loglikelihoods(run["hf"], "medmoe_medmcqa")
    assert len(ref) == 16
    for name in ("gguf", "remote"):
        ours = _loglikelihoods(run[name], "medmoe_medmcqa")
        assert max(abs(a - b) for a, b in zip(ours, ref)) < TOL, name
        assert run[name]["results"]["medmoe_medmcqa"]["acc,none"] == run["hf"]["results"]["medmoe_medmcqa"]["acc,none"]
    assert run["gguf"]["config"]["medmoe"]["label"] == "gguf-f32"
    assert SECRET not in json.dumps(run["remote"], default=str)


def test_remote_generated_token_dropped_by_server_injected(trained):
    """llama-cpp-python leaves out a generated BOS but still counts it in ``usage``: offsets decide."""
    from medmoe_lm_eval.harness.backends.codecs import HFCodec

    codec = HFCodec(str(trained))
    context, continuation = ll_requests()[0].args
    text = context + continuation
    n_prompt = len(codec.encode(text)) - 1  # entries after the BOS, as llama-cpp-python returns them
    offsets = [round(i * len(text) / n_prompt) for i in range(n_prompt)]
    body = {"choices": [{"text": text, "index": 0, "finish_reason": "length", "logprobs": {
        "text_offset": offsets, "token_logprobs": [None] + [-0.5] * (n_prompt - 1), "top_logprobs": [None] + [{"a": -0.5}] * (n_prompt - 1)}}],
        "usage": {"prompt_tokens": n_prompt + 1, "completion_tokens": 1}}  # fmt: skip
    with scripted_server(lambda h, b: (200, MODELS) if h.path == "/v1/models" else (200, json.dumps(body))) as (url, _):
        [(lp, greedy)] = remote(url, str(trained), max_retries=0).loglikelihood(ll_requests()[:1])
    n_cont = len(codec.encode(text)) - len(codec.encode(context))
    assert lp == pytest.approx(-0.5 * n_cont) and greedy


def test_remote_bad_tokenizer_and_no_tokenize_endpoint_injected(tmp_path):
    """A tokenizer that cannot load, or a server without /tokenize: one line each, at load."""
    with scripted_server(lambda h, b: (200, MODELS) if h.path == "/v1/models" else (404, '{"detail": "Not Found"}')) as (url, _):
        with pytest.raises(BackendError, match="tokenizer '.*' could not be loaded"):
            remote(url, str(tmp_path / "no-tokenizer-here"), max_retries=0)
        with pytest.raises(BackendError, match="has no tokenize endpoint; set 'tokenizer'"):
            remote(url, None, max_retries=0)

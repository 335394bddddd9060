"""Each backend's streaming path (what the serving probe and ``medmoe ask`` time) gives the answer
``generate_until`` gives, in more than one piece: transformers' streamer, llama.cpp's token
generator, and server-sent events from a real ``llama_cpp.server`` on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

pytest.importorskip("llama_cpp")

from backend_fixtures import gen_requests
from llama_server import llama_server

from medmoe_lm_eval.harness.backends import make_backend
from medmoe_lm_eval.harness.backends.base import Backend, pieces_until
from medmoe_lm_eval.harness.config import GGUFExpert, HFExpert, RemoteExpert

pytestmark = pytest.mark.gguf
PROMPTS = ["The patient presented with", "Question: what treats fever?\nAnswer:"]
KWARGS = {"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False}


def _check(backend: Backend) -> None:
    expected = backend.generate_until(gen_requests(PROMPTS, KWARGS["until"], KWARGS["max_gen_toks"]))
    for prompt, answer in zip(PROMPTS, expected):
        pieces = list(backend.stream(prompt, dict(KWARGS)))
        # streamers emit text as it becomes whole words (transformers' at each space, llama.cpp's per
        # token), so an answer of one "word" (a tiny model may repeat one token) may come in one piece
        assert "".join(pieces) == answer and (len(pieces) > 1 or len(answer.split()) <= 1), (prompt, pieces)
    assert type(backend).streams is True


def test_hf_stream_equals_generate_until(trained):
    backend = make_backend(HFExpert(name="tiny-hf", backend="hf", model=str(trained), device="cpu"), device="cpu")
    backend.load()
    try:
        _check(backend)
    finally:
        backend.close()


def test_gguf_stream_equals_generate_until_and_a_cpu_only_file_computes_on_the_cpu(f32_gguf):
    import llama_cpp

    spec = GGUFExpert(name="tiny-gguf", backend="gguf", model=str(f32_gguf), n_ctx=512, n_threads=1, device="cpu")
    backend = make_backend(spec, device="cpu")
    backend.load()
    try:
        _check(backend)
    finally:
        backend.close()
    no_offload = GGUFExpert(name="g0", backend="gguf", model=str(f32_gguf), n_gpu_layers=0)
    all_layers = GGUFExpert(name="g1", backend="gguf", model=str(f32_gguf), n_gpu_layers=-1)
    assert make_backend(no_offload, device="cuda:0").compute_device() == "cpu"  # its energy is RAPL's, never NVML's
    offloads = bool(llama_cpp.llama_supports_gpu_offload())
    assert make_backend(all_layers, device="cuda:0").compute_device() == ("cuda:0" if offloads else "cpu")


def test_remote_stream_equals_generate_until_over_server_sent_events(f32_gguf, trained):
    with llama_server(f32_gguf, n_ctx=512) as (url, _proc):
        spec = RemoteExpert(name="tiny-remote", backend="remote", model="tiny", base_url=url, tokenizer=str(trained), timeout_s=30.0)
        backend = make_backend(spec, device="remote")
        backend.load()
        try:
            _check(backend)
            assert backend.compute_device() == "remote"
        finally:
            backend.close()


class _WholeAnswer(Backend):
    """A backend with no streaming path of its own (scripted answers)."""

    def load(self) -> None:
        pass

    def loglikelihood(self, requests):
        return [(0.0, True) for _ in requests]

    def loglikelihood_rolling(self, requests):
        return [0.0 for _ in requests]

    def generate_until(self, requests):
        return [f"answer to {r.args[0]}" for r in requests]


def test_default_stream_yields_the_whole_answer_at_once_and_says_so():
    backend = _WholeAnswer(spec=SimpleNamespace(name="whole", backend="scripted", batch_size=1), device="cpu")
    assert list(backend.stream("q", dict(KWARGS))) == ["answer to q"] and backend.streams is False


def test_pieces_until_cuts_a_stop_string_split_across_pieces():
    def chunks() -> Iterator[str]:
        yield from ["Fever is", " treated\n", "\nwith rest"]

    assert list(pieces_until(chunks(), ["\n\n"])) == ["Fever is", " treated"]
    assert list(pieces_until(iter(["a", "b"]), [])) == ["a", "b"]
    assert "".join(pieces_until(iter(["Fever is", " treated\n", "more"]), ["\n\n"])) == "Fever is treated\nmore"  # a false start is shown

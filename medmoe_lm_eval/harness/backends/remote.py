"""An expert served by an OpenAI-compatible ``/v1/completions`` server (vLLM, llama-cpp-python).

This is how a mixture outgrows one machine: each expert on its own serving cluster, this
process only routing and fusing. It is the project's only HTTP client (``_http``): urllib3's
pool and ``Retry`` (backoff with jitter on connection errors, timeouts, 429 and 5xx, a capped
``Retry-After``, an overall ``deadline_s`` per request), a bounded thread pool (``concurrency``,
which the command line's ``--batch_size`` overrides), and a key read from the environment
variable named by ``api_key_env`` at every call (never stored, logged or written to results).

Loglikelihood uses ``echo`` + ``logprobs``: the server returns the log-probability of every
prompt token, and the continuation's are the last *n* prompt entries, *n* counted by the
expert's tokenizer with ``HFLM``'s rules (``_requests``). The tokenizer is the ``tokenizer``
field (a local path or hub id of the served model's HF tokenizer, exact) or, without it, the
server's own tokenize endpoint (``/extras/tokenize`` of llama-cpp-python, ``/tokenize`` of vLLM).

Limits, checked rather than guessed: servers that follow OpenAI's echo convention of leaving out
the first prompt token's logprob (llama-cpp-python's does) cannot score the token right after
BOS, so an empty context or a rolling loglikelihood on such a server raises ``BackendError``;
prompts longer than the window are cut at token boundaries and re-sent as text, keeping the last
``max_length - 2`` tokens (room for the server's BOS and the one token a completion generates).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from medmoe_lm_eval.harness.backends import _requests as rq
from medmoe_lm_eval.harness.backends._http import HttpSettings, JsonClient
from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.backends.codecs import HFCodec, ServerCodec
from medmoe_lm_eval.harness.batching import BatchSetting

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_MAX_LENGTH = 2048
#: without ``deadline_s``: every attempt may use its whole timeout, plus this much waiting between them
DEFAULT_WAITS_S = 60.0


@dataclass(frozen=True)
class _Scoring:
    """One echo request: ``text`` whose last ``n_cont`` prompt tokens are scored."""

    text: str
    n_cont: int
    n_tokens: int  # prompt tokens by the expert's tokenizer, BOS included when it adds one


class RemoteBackend(Backend):
    """``backend: remote``: an OpenAI-compatible completions server."""

    name = "remote"

    batch_unit = "requests in flight"

    def __init__(self, spec: Any, device: str | None = None, batch: BatchSetting | None = None) -> None:
        super().__init__(spec, device, batch)
        self._client: JsonClient | None = None
        self._codec: HFCodec | ServerCodec | None = None
        self._served: str | None = None
        self._server_max_len: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return str(self.spec.base_url).rstrip("/").removesuffix("/v1")

    def load(self) -> None:
        if self._client is not None:
            return
        self._api_key()  # fail early on a missing environment variable
        spec = self.spec
        timeout, retries = float(spec.timeout_s), int(spec.max_retries)
        deadline = float(spec.deadline_s) if spec.deadline_s else (retries + 1) * timeout + DEFAULT_WAITS_S
        settings = HttpSettings(spec.name, timeout, retries, deadline, self.concurrency, spec.api_key_env)
        self._client = JsonClient(self.base_url, settings, self._headers)
        try:
            self._served = self._served_model()
            self._codec = self._load_codec()
        except BaseException:
            self.close()  # a later load() starts again instead of finding half a connection
            raise

    def _load_codec(self) -> HFCodec | ServerCodec:
        if self.spec.tokenizer:
            try:
                return HFCodec(self.spec.tokenizer, self.spec.trust_remote_code)
            except (OSError, ValueError) as exc:
                raise BackendError(
                    f"expert '{self.spec.name}': tokenizer '{self.spec.tokenizer}' could not be loaded ({type(exc).__name__}); fix 'tokenizer' (a local folder or hub id of the served model)"
                ) from None
        codec = ServerCodec.probe(self._post, self.spec.model)
        if codec is None:
            raise BackendError(
                f"expert '{self.spec.name}': {self.base_url} has no tokenize endpoint; set 'tokenizer' to the served model's HF tokenizer (path or hub id)"
            )
        return codec

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._codec = None

    def _served_model(self) -> str | None:
        """The server's model id (``/v1/models``); also proves the server is up before any work."""
        data = self._call("GET", "/v1/models", None)
        models = [m for m in (data.get("data") or []) if isinstance(m, dict)] if isinstance(data, dict) else []
        ids = [m.get("id") for m in models]
        lengths = [m["max_model_len"] for m in models if isinstance(m.get("max_model_len"), int)]
        self._server_max_len = lengths[0] if lengths else None  # vLLM reports its window
        if ids and self.spec.model not in ids:
            log.warning("expert '%s': %s serves %s, not '%s'; requests name '%s'", self.spec.name, self.base_url, ids, self.spec.model, self.spec.model)
        return ids[0] if ids else None

    @property
    def codec(self) -> HFCodec | ServerCodec:
        if self._codec is None:
            self.load()
        assert self._codec is not None
        return self._codec

    @property
    def max_length(self) -> int:
        if self.spec.max_length:
            return int(self.spec.max_length)
        if self._server_max_len:
            return self._server_max_len
        limit = getattr(getattr(self._codec, "tok", None), "model_max_length", None)
        return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else DEFAULT_MAX_LENGTH

    @property
    def concurrency(self) -> int:
        """Requests in flight at once: the command line's batch size, else the adapter's ``concurrency``."""
        return int(self.batch.size) if isinstance(self.batch.size, int) else int(self.spec.concurrency)

    @property
    def max_concurrency(self) -> int:
        return self.concurrency

    def prepare(self, request_type: str, requests: list[Instance]) -> int:
        self.effective_batch[request_type] = self.concurrency
        return self.concurrency

    def docs_per_call(self, batch: int) -> int:
        """At least ``concurrency`` documents per call (fewer would leave the server idle), or the
        adapter's ``batch_size`` when larger (fewer, longer calls)."""
        own = self.spec.batch_size if isinstance(self.spec.batch_size, int) else 1
        return max(batch, own)

    # -- HTTP ------------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        env = self.spec.api_key_env
        if not env:
            return None
        key = os.environ.get(env)
        if not key:
            raise BackendError(f"expert '{self.spec.name}': environment variable {env} (api_key_env) is not set; export it with the server's API key")
        return key

    def _headers(self) -> dict[str, str]:
        key = self._api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        return self._call("POST", path, payload)

    def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        assert self._client is not None, "load() first"
        return self._client.call(method, path, payload)

    def _map(self, fn: Callable[[int], T], n: int) -> list[T]:
        """``fn(i)`` for ``i < n`` on at most ``concurrency`` threads, results in order."""
        out: list[Any] = [None] * n
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, n or 1))) as pool:
            futures = {pool.submit(fn, i): i for i in range(n)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    out[i] = fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return out

    # -- loglikelihood ---------------------------------------------------------------------
    def _budget(self) -> int:
        """Prompt tokens (BOS included) that fit next to the one generated token."""
        return self.max_length - 1

    def _scoring(self, job: rq.ScoreJob, text: str | None) -> _Scoring:
        """The request for one job; ``text`` is the untruncated prompt when the caller has it."""
        tokens = job.context + job.continuation
        if len(job.continuation) > self._budget() - 1:
            raise BackendError(
                f"expert '{self.spec.name}': continuation of {len(job.continuation)} tokens does not fit the {self.max_length}-token window; raise max_length or shorten the task's targets"
            )
        if text is not None and len(tokens) <= self._budget():
            return _Scoring(text, len(job.continuation), len(tokens))
        keep = tokens[-(self._budget() - 1) :] if len(tokens) > self._budget() else tokens
        if len(keep) < len(tokens):
            log.warning(
                "expert '%s': prompt of %d tokens exceeds the %d-token window; keeping the last %d", self.spec.name, len(tokens), self.max_length, len(keep)
            )
        if keep and keep[0] == self.codec.prefix_id:
            keep = keep[1:]  # the server adds its own BOS
        return _Scoring(self.codec.decode(keep), len(job.continuation), len(keep) + 1)

    def _echo(self, item: _Scoring) -> tuple[float, bool]:
        payload = {"model": self.spec.model, "prompt": item.text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        return self._parse_echo(self._post("/v1/completions", payload), item)

    def _parse_echo(self, data: Any, item: _Scoring) -> tuple[float, bool]:
        """Sum the last ``n_cont`` prompt logprobs; greedy when each is its position's maximum."""
        where = f"expert '{self.spec.name}': {self.base_url}/v1/completions"
        try:
            choice = data["choices"][0]
            lp = choice["logprobs"]
            token_lps, tops = lp["token_logprobs"], lp["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{where}: response has no choices[0].logprobs (token_logprobs, top_logprobs); the server must support echo with logprobs"
            ) from None
        prompt_lps = token_lps[: self._n_prompt_entries(choice, data, item.text)]
        needed = prompt_lps[-item.n_cont :]
        top = tops[len(prompt_lps) - item.n_cont : len(prompt_lps)]
        if len(prompt_lps) < item.n_cont or any(v is None for v in needed):
            raise BackendError(
                f"{where}: server returns no logprob for the first prompt token (OpenAI echo convention), so a token right after BOS cannot be scored; give the request a context, or serve with vLLM, or use backend gguf"
            )
        if len(prompt_lps) not in (item.n_tokens, item.n_tokens - 1):
            raise BackendError(
                f"{where}: server scored {len(prompt_lps)} prompt tokens, the expert's tokenizer counts {item.n_tokens}; set 'tokenizer' to the served model's tokenizer"
            )
        greedy = all(isinstance(t, dict) and t and v >= max(t.values()) for v, t in zip(needed, top))
        return float(sum(needed)), bool(greedy)

    @staticmethod
    def _n_prompt_entries(choice: dict[str, Any], data: dict[str, Any], text: str) -> int:
        """How many logprob entries belong to the prompt (the rest is the one generated token).

        Character offsets decide where they exist: a server may drop an entry for a generated
        special token (llama-cpp-python skips BOS), so ``usage.completion_tokens`` alone can be
        off by one. Without offsets, ``usage`` (or ``finish_reason``) decides.
        """
        lp = choice["logprobs"]
        offsets = lp.get("text_offset")
        if isinstance(offsets, list) and len(offsets) == len(lp["token_logprobs"]) and all(isinstance(o, int) for o in offsets):
            return sum(1 for o in offsets if o < len(text))
        usage = data.get("usage") or {}
        n_gen = int(usage.get("completion_tokens", 1 if choice.get("finish_reason") == "length" else 0))
        return len(lp["token_logprobs"]) - n_gen

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        items = [self._request_item(*req.args) for req in requests]
        return self._map(lambda i: self._echo(items[i]), len(items))

    def _request_item(self, context: str, continuation: str) -> _Scoring:
        job = rq.encode_pair(self.codec, context, continuation)
        return self._scoring(job, context + continuation)  # moving spaces leaves the text as is

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        jobs = [rq.rolling_jobs(self.codec, req.args[0], self._budget() - 1) for req in requests]
        return self._map(lambda i: sum(self._echo(self._scoring(job, None))[0] for job in jobs[i]), len(jobs))

    # -- generation ------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        return self._map(lambda i: self._generate(*requests[i].args), len(requests))

    def _generate(self, context: str, gen_kwargs: dict[str, Any]) -> str:
        settings = rq.gen_settings(gen_kwargs, self.codec.eos_text)
        budget = rq.context_budget(self.max_length, settings.max_gen_toks, self.spec.name)
        prompt = context
        ids = self.codec.encode(context)
        if len(ids) > budget:
            log.warning(
                "expert '%s': prompt of %d tokens leaves no room for %d new ones; keeping the last %d", self.spec.name, len(ids), settings.max_gen_toks, budget
            )
            keep = ids[-(budget - 1) :]
            prompt = self.codec.decode(keep[1:] if keep and keep[0] == self.codec.prefix_id else keep)
        payload: dict[str, Any] = {"model": self.spec.model, "prompt": prompt, "max_tokens": settings.max_gen_toks, "temperature": settings.temperature}
        if settings.until:
            payload["stop"] = settings.until[:4]  # OpenAI's limit; the rest are cut below
        data = self._post("/v1/completions", payload)
        try:
            text = data["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"expert '{self.spec.name}': {self.base_url}/v1/completions: response has no choices[0].text") from None
        if not isinstance(text, str):
            raise BackendError(f"expert '{self.spec.name}': {self.base_url}/v1/completions: choices[0].text is not a string")
        return rq.cut_at_stops(text, settings.until)

    # -- single-stream serving ---------------------------------------------------------------
    streams = True

    def stream(self, prompt: str, gen_kwargs: dict[str, Any]) -> Iterator[str]:
        """The answer as the server sends it: ``stream: true``, server-sent events (OpenAI's format).

        Each ``data:`` line carries ``choices[0].text``; ``data: [DONE]`` ends it. The stop
        strings go to the server (OpenAI allows four) and are cut here as well. No retries once
        the answer has started: a half-streamed answer cannot be resent without repeating it.
        """
        from medmoe_lm_eval.harness.backends.base import pieces_until
        from medmoe_lm_eval.harness.backends.remote_stream import streamed_texts

        settings = rq.gen_settings(gen_kwargs, self.codec.eos_text)
        payload: dict[str, Any] = {"model": self.spec.model, "prompt": self._fitted(prompt, settings), "max_tokens": settings.max_gen_toks}
        payload |= {"temperature": settings.temperature, "stream": True}
        if settings.until:
            payload["stop"] = settings.until[:4]
        assert self._client is not None, "load() first"
        lines = self._client.stream_lines("/v1/completions", payload)
        yield from pieces_until(streamed_texts(lines, f"{self.base_url}/v1/completions", self.spec.name), settings.until)

    def _fitted(self, context: str, settings: rq.GenSettings) -> str:
        """``context`` left-cut to the tokens that fit next to ``max_gen_toks`` new ones."""
        budget = rq.context_budget(self.max_length, settings.max_gen_toks, self.spec.name)
        ids = self.codec.encode(context)
        if len(ids) <= budget:
            return context
        keep = ids[-(budget - 1) :]
        return self.codec.decode(keep[1:] if keep and keep[0] == self.codec.prefix_id else keep)

    # -- reporting -------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self.codec.encode(text, add_special=False))

    def info(self) -> dict[str, Any]:
        tokenizer = self.spec.tokenizer or (f"server ({self._codec.dialect})" if isinstance(self._codec, ServerCodec) else None)
        return {
            "backend": self.name,
            "model": self.spec.model,
            "base_url": self.base_url,
            "served_model": self._served,
            "tokenizer": tokenizer,
            "concurrency": self.concurrency,
            "api_key_env": self.spec.api_key_env,
        }

"""The remote backend's HTTP client: urllib3's connection pool and ``Retry``, plus a deadline.

urllib3 does the retrying: connection errors, read timeouts and the statuses in
``RETRY_STATUS`` are retried up to ``max_retries`` times with exponential backoff and jitter,
and a server's ``Retry-After`` is honoured up to ``RETRY_AFTER_MAX_S``. What urllib3 lacks is an
overall deadline for one request with all its retries, which a long evaluation needs so that an
overloaded server cannot stall it for ``max_retries`` times an unbounded wait: :class:`DeadlineRetry`
refuses a retry whose wait would end past the deadline. The pool is thread-safe and sized to the
expert's concurrency, so the backend's worker threads share connections.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, InvalidHeader, MaxRetryError, NewConnectionError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from medmoe_lm_eval.harness.backends.base import BackendError

#: statuses worth another attempt: timeouts, rate limits and transient server errors
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: the longest ``Retry-After`` honoured; a longer one is cut to this (and always to the deadline)
RETRY_AFTER_MAX_S = 30
BACKOFF_FACTOR_S = 0.5
BACKOFF_MAX_S = 8.0


@dataclass
class _Budget:
    """Shared by the copies urllib3 makes of one request's ``Retry``: the deadline and the attempts made."""

    deadline: float
    attempts: int = 1


class DeadlineRetry(Retry):
    """urllib3's ``Retry`` that also stops when the next attempt would start past a deadline."""

    budget: _Budget | None = None

    def new(self, **kw: Any) -> DeadlineRetry:
        retry = super().new(**kw)
        retry.budget = self.budget
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        """The server's ``Retry-After``, at most ``RETRY_AFTER_MAX_S``; a malformed one is ignored.

        urllib3 sleeps for what this returns, so the cap holds for its own waits too.
        """
        try:
            after = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if after is None else min(float(after), RETRY_AFTER_MAX_S)

    def increment(
        self, method: Any = None, url: Any = None, response: Any = None, error: Any = None, _pool: Any = None, _stacktrace: Any = None
    ) -> DeadlineRetry:
        """urllib3's count, then the deadline: a retry whose wait would end past it is not made."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        budget = self.budget
        if budget is not None:
            wait = retry.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
            wait = retry.get_backoff_time() if wait is None else wait
            if time.monotonic() + wait >= budget.deadline:
                reason = error or ResponseError(ResponseError.SPECIFIC_ERROR.format(status_code=getattr(response, "status", "?")))
                raise MaxRetryError(_pool, url, reason) from reason
            budget.attempts += 1
        return retry


@dataclass(frozen=True)
class HttpSettings:
    """One expert's limits: per attempt (``timeout_s``), retries, and the whole request (``deadline_s``)."""

    expert: str
    timeout_s: float
    max_retries: int
    deadline_s: float
    pool_size: int
    api_key_env: str | None = None


class JsonClient:
    """JSON over HTTP to one server, for one expert; every failure is a one-line ``BackendError``."""

    def __init__(self, base_url: str, settings: HttpSettings, headers: Callable[[], dict[str, str]]) -> None:
        self.base_url = base_url
        self.settings = settings
        self._headers = headers
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=max(4, settings.pool_size), block=False)

    def close(self) -> None:
        self._pool.clear()

    def retry(self) -> DeadlineRetry:
        """A fresh ``Retry`` for one request; its deadline starts now."""
        s = self.settings
        retry = DeadlineRetry(
            total=s.max_retries,
            backoff_factor=BACKOFF_FACTOR_S,
            backoff_max=BACKOFF_MAX_S,
            backoff_jitter=BACKOFF_FACTOR_S / 2,
            status_forcelist=RETRY_STATUS,
            allowed_methods=frozenset({"GET", "POST"}),  # completions and tokenize calls change nothing on the server
            respect_retry_after_header=True,
            raise_on_status=False,  # the last response comes back, so its status is in the message
            raise_on_redirect=True,
        )
        retry.budget = _Budget(time.monotonic() + s.deadline_s)
        return retry

    def call(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        """The decoded JSON answer of ``method path``, retried as configured."""
        url = f"{self.base_url}{path}"
        s = self.settings
        retry = self.retry()
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json", **self._headers()}
        try:
            resp = self._pool.request(method, url, body=body, headers=headers, timeout=urllib3.Timeout(connect=s.timeout_s, read=s.timeout_s), retries=retry)
        except MaxRetryError as exc:
            raise self._gave_up(url, _describe(exc.reason, s.timeout_s), retry) from None
        except HTTPError as exc:
            raise self._gave_up(url, _describe(exc, s.timeout_s), retry) from None
        text = resp.data.decode("utf-8", errors="replace")
        if resp.status in RETRY_STATUS:
            raise self._gave_up(url, f"HTTP {resp.status} {_short(text)}", retry)
        if resp.status >= 400:
            raise self._refused(url, resp.status, text)
        try:
            return json.loads(text)
        except ValueError:
            raise BackendError(
                f"expert '{s.expert}': {url}: malformed JSON in the response ({_short(text)}); is base_url an OpenAI-compatible server?"
            ) from None

    def stream_lines(self, path: str, payload: dict[str, Any]) -> Iterator[str]:
        """The body of ``POST path``, line by line as the server sends it (server-sent events).

        Not retried: once an answer has started, sending the request again would repeat it.
        Chunked responses come through as each chunk arrives, so time to first token is the
        server's, not a buffer's.
        """
        url = f"{self.base_url}{path}"
        s = self.settings
        headers = {"Content-Type": "application/json", **self._headers()}
        timeout = urllib3.Timeout(connect=s.timeout_s, read=s.timeout_s)
        try:
            resp = self._pool.request("POST", url, body=json.dumps(payload).encode(), headers=headers, timeout=timeout, retries=False, preload_content=False)
        except HTTPError as exc:
            raise BackendError(f"expert '{s.expert}': {url}: streaming request failed, {_describe(exc, s.timeout_s)}; check that the server is up") from None
        try:
            if resp.status >= 400:
                raise self._refused(url, resp.status, resp.read().decode("utf-8", errors="replace"))
            pending = b""
            for chunk in resp.stream(4096):
                *lines, pending = (pending + chunk).split(b"\n")
                yield from (line.decode("utf-8", errors="replace").rstrip("\r") for line in lines)
            if pending:
                yield pending.decode("utf-8", errors="replace")
        except HTTPError as exc:
            raise BackendError(f"expert '{s.expert}': {url}: the stream broke off, {_describe(exc, s.timeout_s)}") from None
        finally:
            resp.release_conn()

    def _gave_up(self, url: str, what: str, retry: DeadlineRetry) -> BackendError:
        attempts = retry.budget.attempts if retry.budget else 1
        return BackendError(
            f"expert '{self.settings.expert}': {url}: {what} after {attempts} attempt(s); check that the server is up and base_url is right, "
            "or raise timeout_s/max_retries/deadline_s"
        )

    def _refused(self, url: str, status: int, text: str) -> BackendError:
        if status in (401, 403):
            return BackendError(
                f"expert '{self.settings.expert}': {url}: HTTP {status} unauthorized; "
                f"put the server's key in the variable named by api_key_env ({self.settings.api_key_env or 'not set'})"
            )
        return BackendError(f"expert '{self.settings.expert}': {url}: HTTP {status} {_short(text)}")


def _describe(reason: BaseException | None, timeout_s: float) -> str:
    if isinstance(reason, NewConnectionError):  # urllib3 derives it from ConnectTimeoutError
        return f"connection failed ({type(reason).__name__})"
    if isinstance(reason, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return f"no answer within timeout_s={timeout_s:g}s"
    if isinstance(reason, ResponseError):
        return str(reason)
    return f"connection failed ({type(reason).__name__})"


def _short(text: str, n: int = 160) -> str:
    """A response body squeezed onto one line for an error message."""
    return " ".join(str(text).split())[:n]

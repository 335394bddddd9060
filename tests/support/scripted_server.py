"""A scripted OpenAI-style HTTP server on 127.0.0.1, for failures and timings a real server
does not produce on demand (slow answers, 5xx, ``Retry-After``, malformed bodies).

``respond(handler, body)`` returns ``(status, text)`` or ``(status, text, headers)``. The state
dict counts calls and requests in flight and records each POST's ``time.monotonic()`` interval,
so a test can see whether two servers were busy at the same time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = json.dumps({"data": [{"id": "tiny"}]})

Respond = Callable[[BaseHTTPRequestHandler, dict], tuple[Any, ...]]


@contextmanager
def scripted_server(respond: Respond) -> Iterator[tuple[str, dict]]:
    """A local HTTP server answering from ``respond``; shut down on exit."""
    state: dict = {"calls": 0, "in_flight": 0, "max_in_flight": 0, "intervals": []}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict) -> None:
            with lock:
                state["calls"] += 1
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            start = time.monotonic()
            try:
                status, text, *extra = respond(self, body)
            finally:
                with lock:
                    state["in_flight"] -= 1
                    if self.command == "POST":
                        state["intervals"].append((start, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in (extra[0] if extra else {}).items():
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(text.encode())

        def do_GET(self) -> None:
            self._answer({})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self._answer(json.loads(self.rfile.read(length) or b"{}"))

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def echo_body(n_prompt: int) -> str:
    """An OpenAI-style echo answer: BOS entry null, then -1.0 per prompt token, one generated token."""
    lps = [None] + [-1.0] * (n_prompt - 1) + [-2.0]
    tops = [None] + [{"x": -1.0}] * (n_prompt - 1) + [{"y": -2.0}]
    return json.dumps(
        {
            "choices": [{"text": "", "index": 0, "logprobs": {"token_logprobs": lps, "top_logprobs": tops}, "finish_reason": "length"}],
            "usage": {"completion_tokens": 1},
        }
    )


def overlapping(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Seconds during which some interval of ``a`` and some interval of ``b`` ran at once."""
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)

"""Streamed completions from an OpenAI-compatible server: server-sent events, one text piece each.

With ``stream: true`` the server answers ``/v1/completions`` with lines ``data: {json}``, each
carrying the next piece in ``choices[0].text``, and ends with ``data: [DONE]``; blank lines and
comments (``:``) separate events. vLLM and llama-cpp-python's server both follow this.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests

from medmoe_lm_eval.harness.backends.base import BackendError


def streamed_texts(session: requests.Session, url: str, payload: dict[str, Any], headers: dict[str, str], timeout_s: float, expert: str) -> Iterator[str]:
    """The text pieces of one streamed completion, in order; errors name the expert and the URL."""
    try:
        resp = session.post(url, json=payload, headers=headers, timeout=timeout_s, stream=True)
    except requests.RequestException as exc:
        raise BackendError(f"expert '{expert}': {url}: streaming request failed ({type(exc).__name__}); check that the server is up") from None
    with resp:
        if resp.status_code >= 400:
            body = " ".join(str(resp.text).split())[:160]
            raise BackendError(f"expert '{expert}': {url}: HTTP {resp.status_code} {body} on a streaming request")
        for line in resp.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield event_text(data, url, expert)


def event_text(data: str, url: str, expert: str) -> str:
    """``choices[0].text`` of one event (empty when the event carries none, e.g. a final usage event)."""
    try:
        choices = json.loads(data)["choices"]
        return str(choices[0].get("text") or "") if choices else ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise BackendError(f"expert '{expert}': {url}: a streamed event is not a completion chunk ({data[:120]})") from None

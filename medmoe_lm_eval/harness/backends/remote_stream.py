"""Streamed completions from an OpenAI-compatible server: server-sent events, one text piece each.

With ``stream: true`` the server answers ``/v1/completions`` with lines ``data: {json}``, each
carrying the next piece in ``choices[0].text``, and ends with ``data: [DONE]``; blank lines and
comments (``:``) separate events. vLLM and llama-cpp-python's server both follow this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from medmoe_lm_eval.harness.backends.base import BackendError


def streamed_texts(lines: Iterable[str], url: str, expert: str) -> Iterator[str]:
    """The text pieces of one streamed completion, in order, from its response lines."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators and ``:`` comments
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

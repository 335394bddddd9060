"""lm-eval requests -> token-level scoring jobs, with exactly the rules of lm-eval's ``HFLM``.

The gguf and remote backends score tokens themselves, so a loglikelihood only matches the HF
backend (and lm-eval's own ``--model hf``) if the request is cut into tokens the same way:
trailing spaces of the context move to the continuation, the continuation is the tail of the
encoding of the whole string, an empty context becomes the prefix (BOS) token, over-long inputs
lose tokens on the left, and rolling loglikelihood uses lm-eval's own window functions. Keeping
those rules here, once, is what makes per-request parity across backends testable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from medmoe_lm_eval.harness.backends.base import BackendError

log = logging.getLogger(__name__)

#: lm-eval's ``HFLM`` default for ``max_gen_toks`` when a task does not set it
DEFAULT_MAX_GEN_TOKS = 256


class Codec(Protocol):
    """The few tokenizer operations the rules need (llama.cpp's or a HF tokenizer)."""

    def encode(self, text: str, add_special: bool = True) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def prefix_id(self) -> int: ...


@dataclass(frozen=True)
class ScoreJob:
    """Score ``continuation`` after ``context`` (token ids; ``context`` is never empty)."""

    context: list[int]
    continuation: list[int]


@dataclass(frozen=True)
class GenSettings:
    """A generate_until request's settings, normalised like ``HFLM`` does."""

    until: list[str]
    max_gen_toks: int
    temperature: float


def encode_pair(codec: Codec, context: str, continuation: str) -> ScoreJob:
    """``HFLM.loglikelihood``'s tokenization of one ``(context, continuation)`` request."""
    if context == "":
        cont = codec.encode(continuation, add_special=False)
        if cont and cont[0] == codec.prefix_id:
            return ScoreJob(cont[:1], cont[1:])
        return ScoreJob([codec.prefix_id], cont)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = codec.encode(context + continuation)
    ctx = codec.encode(context)
    return ScoreJob(ctx, whole[len(ctx) :])


def rolling_jobs(codec: Codec, string: str, max_length: int) -> list[ScoreJob]:
    """``HFLM.loglikelihood_rolling``'s disjoint windows (the prefix token conditions the first)."""
    windows = get_rolling_token_windows(token_list=codec.encode(string), prefix_token=codec.prefix_id, max_seq_len=max_length, context_len=1)
    return [ScoreJob(list(ctx), list(cont)) for ctx, cont in map(make_disjoint_window, windows)]


def scoring_input(job: ScoreJob, max_length: int, expert: str) -> list[int]:
    """Tokens to run: ``(context + continuation)[:-1]``, left-truncated to ``max_length``.

    Truncation drops the oldest context tokens (HFLM does the same and logs a warning); a
    continuation that alone exceeds the window cannot be scored and is an error.
    """
    if not job.continuation:
        raise BackendError(f"expert '{expert}': a request has an empty continuation; nothing to score")
    if len(job.continuation) > max_length:
        raise BackendError(
            f"expert '{expert}': continuation of {len(job.continuation)} tokens exceeds the {max_length}-token window; raise max_length/n_ctx or shorten the task's targets"
        )
    full = job.context + job.continuation
    if len(full) > max_length + 1:
        log.warning(
            "expert '%s': input of %d tokens exceeds the %d-token window; dropping %d tokens on the left",
            expert,
            len(full) - 1,
            max_length,
            len(full) - 1 - max_length,
        )
    return full[-(max_length + 1) :][:-1]


def gen_settings(gen_kwargs: dict[str, Any] | None, eos_text: str | None, default_max: int = DEFAULT_MAX_GEN_TOKS) -> GenSettings:
    """``until`` (plus EOS), ``max_gen_toks`` and temperature (0 = greedy) from a request."""
    kwargs = normalize_gen_kwargs(dict(gen_kwargs or {}), default_max)
    until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
    temperature = float(kwargs.get("temperature") or 0.0) if kwargs.get("do_sample") else 0.0
    return GenSettings(until=[u for u in until if u], max_gen_toks=int(kwargs["max_gen_toks"]), temperature=temperature)


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The text before the first stop sequence (what ``HFLM`` returns)."""
    for stop in until:
        if stop:
            text = text.split(stop)[0]
    return text


def context_budget(max_length: int, max_gen_toks: int, expert: str) -> int:
    """Prompt tokens that fit next to ``max_gen_toks`` new ones (HFLM's ``max_ctx_len``)."""
    budget = max_length - max_gen_toks
    if budget <= 0:
        raise BackendError(
            f"expert '{expert}': max_gen_toks={max_gen_toks} leaves no room for a prompt in the {max_length}-token window; lower the task's max_gen_toks or raise max_length/n_ctx"
        )
    return budget

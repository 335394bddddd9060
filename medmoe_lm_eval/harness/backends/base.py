"""The contract every expert backend meets.

A backend is one expert's model. It takes lm-eval ``Instance`` objects unchanged, so the HF
backend can hand them straight to lm-eval's own ``HFLM`` (exact parity with ``--model hf``) and
the others read ``instance.args`` exactly as lm-eval documents it. Weights load in ``load()``,
not in ``__init__``, so a mixture can validate every expert first and keep only some resident.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.harness.batching import BatchSetting
from medmoe_lm_eval.harness.batching import for_expert as batch_for_expert

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

#: requests per call for ``batch_size: auto`` on a backend with nothing to detect
AUTO_REQUESTS_PER_CALL = 64


class BackendError(RuntimeError):
    """A backend failed in a way the user can act on; the message names the expert."""


def pieces_until(chunks: Iterable[str], until: Sequence[str]) -> Iterator[str]:
    """New text of a growing answer, cut before the first stop string (then the stream ends).

    A stop string can straddle two chunks, so the tail that could still begin one is held back
    until the next chunk decides: what is yielded is exactly ``cut_at_stops`` of the whole text.
    """
    stops = [s for s in until if s]
    text, shown = "", 0
    for chunk in chunks:
        text += chunk
        hits = [text.find(stop) for stop in stops if stop in text]
        if hits:
            if min(hits) > shown:
                yield text[shown : min(hits)]
            return
        hold = max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
        if len(text) - hold > shown:
            yield text[shown : len(text) - hold]
            shown = len(text) - hold
    if len(text) > shown:
        yield text[shown:]


class Backend(abc.ABC):
    """One expert. Subclasses implement ``load`` and the three request types."""

    #: lm-eval-style name of the backend, as written in the adapter's ``backend:`` field
    name: str = "base"

    def __init__(self, spec: Any, device: str | None = None, batch: BatchSetting | None = None) -> None:
        self.spec = spec
        self.device = device
        self.batch = batch_for_expert(spec, batch)  # the command line's batch, or the adapter's
        self.effective_batch: dict[str, int] = {}  # request type -> what prepare() settled on

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> None:
        """Load weights (or connect). Raise ``BackendError`` naming the expert on failure."""

    def close(self) -> None:
        """Release memory or connections. Must be safe to call twice."""

    # -- requests (same shapes as lm_eval.api.model.LM) -------------------------------------
    @abc.abstractmethod
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(logprob of continuation, is_greedy)`` per ``(context, continuation)`` request."""

    @abc.abstractmethod
    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        """Total log-probability of each ``(string,)`` request, windowed to the context size."""

    @abc.abstractmethod
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy continuation of each ``(context, gen_kwargs)`` request."""

    # -- single-stream serving (the profiler's probe, ``medmoe ask``) ---------------------------
    #: whether :meth:`stream` yields text as tokens are produced; the default yields it at once
    streams: bool = False

    def stream(self, prompt: str, gen_kwargs: dict[str, Any]) -> Iterator[str]:
        """The answer to one prompt, piece by piece, under lm-eval's ``generate_until`` kwargs
        (``until``, ``max_gen_toks``, ``do_sample``, ``temperature``).

        The default yields the whole answer at once through :meth:`generate_until`, so the
        time to its first piece is the time to the whole answer; backends that can stream
        override it and set ``streams = True``, and the profile says which did.
        """
        from lm_eval.api.instance import Instance

        request = Instance("generate_until", {}, (prompt, dict(gen_kwargs)), 0)
        yield from self.generate_until([request])

    def compute_device(self) -> str:
        """Where this expert computes (``cuda:N``, ``cpu``, ``remote``): the device whose counters
        its energy and memory are read from. A backend that ignores its device overrides it."""
        return self.device or "cpu"

    def fit_prompt(self, prompt: str, max_new_tokens: int) -> tuple[str, bool]:
        """Keep the end of a prompt that does not fit the window (what lm-eval's HFLM does)."""
        limit = self.max_length
        if not limit or self.count_tokens(prompt) <= limit - max_new_tokens:
            return prompt, False
        budget = max(limit - max_new_tokens, 1)
        low, high = 0, len(prompt)
        while low < high:  # shortest cut from the left whose tail fits
            mid = (low + high) // 2
            if self.count_tokens(prompt[mid:]) <= budget:
                high = mid
            else:
                low = mid + 1
        return prompt[low:], True

    # -- defaulted hooks -------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` with this expert's tokenizer (for throughput figures)."""
        return len(text.split())

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        """Batch form of :meth:`count_tokens`; backends with a fast batch tokenizer override it."""
        return [self.count_tokens(t) for t in texts]

    @property
    def max_length(self) -> int | None:
        """The context window in tokens, when known."""
        return getattr(self.spec, "max_length", None)

    def info(self) -> dict[str, Any]:
        """What goes into the results: model, quantization, library versions."""
        return {"backend": self.name, "model": getattr(self.spec, "model", None)}

    @property
    def max_concurrency(self) -> int:
        return 1

    # -- batching ----------------------------------------------------------------------------
    def prepare(self, request_type: str, requests: list[Instance]) -> int:
        """Settle the batch for this expert's whole share of one request type, before its calls.

        Called once per request type with every request the expert will get, so a backend that
        detects its batch size (``HFLM``'s ``auto``) does so once, on the longest request, and
        not once per call. Returns the effective batch size, recorded in the profile.
        """
        size = self.batch.size if isinstance(self.batch.size, int) else (self.batch.max_size or AUTO_REQUESTS_PER_CALL)
        self.effective_batch[request_type] = size
        return size

    def docs_per_call(self, batch: int) -> int:
        """Documents the model hands this backend per call, given the effective ``batch``."""
        return max(1, batch)

    def batch_report(self) -> dict[str, Any]:
        """The requested and effective batch, and what a batch means for this backend."""
        return {
            "requested": self.batch.describe(),
            "source": self.batch.source,
            "max_batch_size": self.batch.max_size,
            "unit": self.batch_unit,
            "effective": dict(self.effective_batch),
        }

    #: what one unit of ``batch_size`` is for this backend
    batch_unit: str = "requests per call"

    def peak_rss_bytes(self) -> int | None:
        """Peak RSS of a separate server process behind this backend, where measurable."""
        return None

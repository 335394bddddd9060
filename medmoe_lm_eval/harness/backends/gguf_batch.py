"""Continuation log-likelihoods through llama.cpp's batch API: logits only where a score reads them.

``Llama.eval`` with ``logits_all=True`` has llama.cpp run the output projection for every prompt
position and copies each row into an ``n_ctx x vocabulary`` array, although a continuation is
scored from its own positions only; for Gemma 3's 262k-entry vocabulary that projection is most
of the model's work. Here a position asks for logits only when a continuation token is scored
from it, the one-token requests that share a context (the answer options of one question) go into
one ``llama_decode`` (the shared tokens once, tagged with every option's sequence, each option's
token on its own sequence; a request of several tokens gets a decode of its own, see
:meth:`BatchScorer._groups`), and log-softmax runs on those rows alone, at most ``max_rows`` of
them per decode, so no request ever holds a whole context's logits.

Sequence 0 keeps the last shared context in the KV cache between calls, so a prefix common to
the next question (a few-shot prompt) is not evaluated again; the ``Llama`` object is told what
sequence 0 holds, so its generation reuses that cache too, and what generation leaves there is
reused by the next scoring call.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medmoe_lm_eval.harness.backends.base import BackendError

#: bytes of logits one decode may produce; bounds llama.cpp's output buffer and the numpy work
LOGITS_BUDGET_BYTES = 64 * 2**20
#: sequences a context holds: sequence 0 plus one per answer option scored at once
N_SEQUENCES = 16
#: fewest tokens in a decode that yields scores. llama.cpp picks its matrix kernels by the number
#: of tokens in a batch, and logits differ between kernels (measured on the same position: 0.4 on
#: SmolLM2 Q4_1 for 1 token, 0.3-0.8 on Gemma 3 Q4_K_M below 8, none from 8 on); a short decode
#: re-evaluates cached prefix tokens instead, so a score never depends on what the cache held.
MIN_DECODE_TOKENS = 8


def max_rows(n_vocab: int, n_batch: int) -> int:
    """Logit rows per decode within :data:`LOGITS_BUDGET_BYTES` (float32), between 1 and ``n_batch``."""
    return max(2 * MIN_DECODE_TOKENS, min(int(n_batch), LOGITS_BUDGET_BYTES // (4 * max(1, int(n_vocab)))))


def context_settings(n_vocab: int, n_batch: int) -> dict[str, Any]:
    """The llama.cpp context parameters this scorer needs (see :func:`llama_compat.patched_defaults`).

    One unified KV cache shared by ``N_SEQUENCES`` sequences (options share the context's cells),
    and a compute graph reserved for ``max_rows`` logit rows, not ``n_batch`` of them.
    """
    return {"n_seq_max": N_SEQUENCES, "kv_unified": True, "n_outputs_max": max_rows(n_vocab, n_batch)}


@dataclass(frozen=True)
class Scored:
    """What to run for one request: ``tokens``, whose last ``len(targets)`` positions predict ``targets``."""

    tokens: list[int]
    targets: list[int]

    @property
    def prefix(self) -> tuple[int, ...]:
        """The tokens before the first scored position: what the options of a question share."""
        return tuple(self.tokens[: len(self.tokens) - len(self.targets)])


@dataclass(frozen=True)
class _Entry:
    """One token of a batch: its position, sequences and, when scored, the request and target."""

    token: int
    pos: int
    seqs: tuple[int, ...]
    job: int = -1
    target: int = -1


def row_scores(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: log-softmax at ``targets`` (float64) and whether ``targets`` is the argmax."""
    rows = np.arange(len(targets))
    best = logits.argmax(axis=1)
    top = logits[rows, best].astype(np.float64)
    total = np.exp(logits - top[:, None].astype(np.float32)).sum(axis=1, dtype=np.float64)
    return logits[rows, targets].astype(np.float64) - top - np.log(total), best == targets


class BatchScorer:
    """Scores requests on a ``llama_cpp.Llama`` built with :func:`context_settings`."""

    def __init__(self, llm: Any, n_batch: int, expert: str) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._llm = llm
        self._ctx = llm.ctx
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._expert = expert
        self._n_batch = int(n_batch)
        self._n_vocab = int(llm.n_vocab())
        self._rows = max_rows(self._n_vocab, self._n_batch)
        self._n_seq = int(llama_cpp.llama_n_seq_max(self._ctx))
        self._capacity = int(llama_cpp.llama_n_ctx(self._ctx))
        self._reusable = not (llama_cpp.llama_model_is_recurrent(llm.model) or llama_cpp.llama_model_is_hybrid(llm.model))
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, self._n_seq)

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None

    # -- public --------------------------------------------------------------------------------
    def score(self, requests: Sequence[Scored]) -> list[tuple[float, bool]]:
        """``(sum of target log-probabilities, all targets greedy)`` per request, in order."""
        if not self._reusable:
            raise BackendError(f"expert '{self._expert}': scoring a recurrent or hybrid model through llama.cpp is not supported; use backend: hf")
        totals = np.zeros(len(requests))
        misses = np.zeros(len(requests), dtype=np.int64)
        held = [int(t) for t in self._llm.input_ids[: self._llm.n_tokens]]
        try:
            for members in self._groups(requests):
                held = self._run_group(requests, members, held, totals, misses)
        except BaseException:
            self._lib.llama_memory_clear(self._mem, True)
            held = []
            raise
        finally:
            self._hand_back(held)
        return [(float(t), bool(m == 0)) for t, m in zip(totals, misses)]

    # -- planning ------------------------------------------------------------------------------
    def _groups(self, requests: Sequence[Scored]) -> list[list[int]]:
        """Requests with the same prefix, as many per group as sequences and KV cells allow.

        A request scoring several tokens gets a group of its own: in a shared decode its tokens
        sit in KV cells after the other options' (a gap the reference has not), llama.cpp's
        attention sums then group the same terms differently, and Q4 models amplify that into
        0.015-0.085 nats (measured on Gemma 3 and SmolLM2). One-token options share a decode.
        """
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for i in sorted(range(len(requests)), key=lambda i: requests[i].tokens):
            by_prefix.setdefault(requests[i].prefix, []).append(i)
        groups: list[list[int]] = []
        for prefix, together in by_prefix.items():
            groups += [[i] for i in together if len(requests[i].targets) > 1]
            members = [i for i in together if len(requests[i].targets) == 1]
            if not members:
                continue
            cells = len(prefix)
            groups.append([])
            for i in members:
                tail = len(requests[i].targets)
                if groups[-1] and (len(groups[-1]) == self._n_seq - 1 or cells + tail > self._capacity):
                    groups.append([])
                    cells = len(prefix)
                groups[-1].append(i)
                cells += tail
        return groups

    def _entries(self, requests: Sequence[Scored], members: list[int], start: int) -> list[_Entry]:
        """The prefix from ``start`` (on sequence 0 and every member's), then each member's tail."""
        prefix = requests[members[0]].prefix
        seqs = tuple(range(len(members) + 1))
        entries = [_Entry(t, start + k, seqs) for k, t in enumerate(prefix[start:])]
        for seq, i in enumerate(members, start=1):
            req = requests[i]
            entries += [_Entry(t, len(prefix) + k, (seq,), i, target) for k, (t, target) in enumerate(zip(req.tokens[len(prefix) :], req.targets))]
        return entries

    # -- running -------------------------------------------------------------------------------
    def _run_group(self, requests: Sequence[Scored], members: list[int], held: list[int], totals: np.ndarray, misses: np.ndarray) -> list[int]:
        """Decode one group, add its scores; returns what sequence 0 holds afterwards."""
        prefix = list(requests[members[0]].prefix)
        new = len(prefix) + sum(len(requests[i].targets) for i in members)
        common = max(0, min(_common_length(held, prefix), new - MIN_DECODE_TOKENS))
        lib = self._lib
        if not lib.llama_memory_seq_rm(self._mem, 0, common, -1):
            lib.llama_memory_clear(self._mem, True)
            common = 0
        for seq in range(1, len(members) + 1):
            lib.llama_memory_seq_cp(self._mem, 0, seq, 0, common)
        try:
            for chunk in self._chunks(self._entries(requests, members, common)):
                self._decode(chunk, totals, misses)
        finally:
            for seq in range(1, len(members) + 1):
                lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        return prefix

    def _chunks(self, entries: list[_Entry]) -> list[list[_Entry]]:
        """Consecutive slices of at most ``n_batch`` tokens and ``max_rows`` scored ones."""
        chunks: list[list[_Entry]] = [[]]
        rows = 0
        for entry in entries:
            scored = entry.job >= 0
            if len(chunks[-1]) == self._n_batch or (scored and rows == self._rows):
                chunks.append([])
                rows = 0
            chunks[-1].append(entry)
            rows += scored
        if len(chunks) > 1 and len(chunks[-1]) < MIN_DECODE_TOKENS:  # a full chunk lends the last its tail
            moved = MIN_DECODE_TOKENS - len(chunks[-1])
            chunks[-2], chunks[-1] = chunks[-2][:-moved], chunks[-2][-moved:] + chunks[-1]
        return chunks

    def _decode(self, chunk: list[_Entry], totals: np.ndarray, misses: np.ndarray) -> None:
        batch = self._batch
        n = len(chunk)
        token = np.ctypeslib.as_array(batch.token, shape=(n,))
        pos = np.ctypeslib.as_array(batch.pos, shape=(n,))
        n_seq_id = np.ctypeslib.as_array(batch.n_seq_id, shape=(n,))
        wanted = np.ctypeslib.as_array(batch.logits, shape=(n,))
        token[:] = [e.token for e in chunk]
        pos[:] = [e.pos for e in chunk]
        n_seq_id[:] = [len(e.seqs) for e in chunk]
        wanted[:] = [e.job >= 0 for e in chunk]
        for k, entry in enumerate(chunk):
            ids = batch.seq_id[k]
            for j, seq in enumerate(entry.seqs):
                ids[j] = seq
        batch.n_tokens = n
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            raise BackendError(f"expert '{self._expert}': llama_decode failed with status {status} on a batch of {n} tokens; lower n_batch or raise n_ctx")
        scored = [e for e in chunk if e.job >= 0]
        if scored:
            self._add_rows(scored, totals, misses)

    def _add_rows(self, scored: list[_Entry], totals: np.ndarray, misses: np.ndarray) -> None:
        pointer = self._lib.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(len(scored), self._n_vocab))
        logp, greedy = row_scores(logits, np.fromiter((e.target for e in scored), dtype=np.int64, count=len(scored)))
        jobs = np.fromiter((e.job for e in scored), dtype=np.int64, count=len(scored))
        np.add.at(totals, jobs, logp)
        np.add.at(misses, jobs, ~greedy)

    def _hand_back(self, held: list[int]) -> None:
        """Tell the ``Llama`` object what sequence 0 holds; its next generation must re-evaluate."""
        llm = self._llm
        llm.reset()
        llm.input_ids[: len(held)] = held
        llm.n_tokens = len(held)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n

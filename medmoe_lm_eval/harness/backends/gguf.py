"""A ``.gguf`` file run in-process by llama-cpp-python.

lm-eval's own ``gguf`` model is an HTTP client to a llama.cpp server and has broken on
loglikelihood more than once; here the model lives in this process. Scoring goes through
llama.cpp's batch API (:mod:`.gguf_batch`: logits only at the continuation's positions, the
one-token answer options of a question in one decode, the shared context in the KV cache); generation
and streaming through ``Llama.generate``. The GGUF's own tokenizer is used, with ``HFLM``'s
request rules (``_requests``), so a GGUF converted from an HF checkpoint gives the same
per-request loglikelihoods as the HF model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.harness.backends import _requests as rq
from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.backends.gguf_batch import BatchScorer, Scored, context_settings
from medmoe_lm_eval.harness.backends.gguf_header import GGUFHeader, HeaderError, read_header
from medmoe_lm_eval.harness.backends.llama_compat import without_extra_buffers
from medmoe_lm_eval.harness.batching import BatchSetting

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: str | Path, expert: str) -> dict[str, Any]:
    """Refuse a missing, foreign or truncated file before llama.cpp prints its own stack of logs.

    :func:`.gguf_header.read_header` walks the header and checks every tensor lies inside the
    file; a file cut short fails there, so the user reads one line naming the file instead of
    llama.cpp's load failure.
    """
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"expert '{expert}': GGUF file {path} does not exist; fix 'model' or create it with `medmoe quantize --method gguf-q8_0`")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise BackendError(f"expert '{expert}': {path} is not a GGUF file (starts with {magic!r}); point 'model' at a .gguf file")
    try:
        header = read_header(path)
    except (HeaderError, OSError) as exc:
        raise BackendError(f"expert '{expert}': {path} is truncated or corrupt ({str(exc)[:160]}); re-download or re-convert it") from None
    return header_metadata(header)


def header_metadata(header: GGUFHeader) -> dict[str, Any]:
    """The few header fields ``info()`` reports, and the vocabulary size, read without loading the model."""
    out: dict[str, Any] = {key: header.metadata[key] for key in ("general.architecture", "general.file_type", "general.name") if key in header.metadata}
    out["n_vocab"] = header.array_lengths.get("tokenizer.ggml.tokens")
    return out


def busy_cpus(loadavg: str | None = None) -> int:
    """Other runnable threads now: ``/proc/loadavg``'s running count less this one (Linux); where
    there is no such file, the 1-minute load average, rounded."""
    if loadavg is None:
        try:
            loadavg = Path("/proc/loadavg").read_text(encoding="ascii")
        except OSError:
            try:
                return round(os.getloadavg()[0])
            except OSError:  # no load average on this platform
                return 0
    running = loadavg.split()[3].split("/")[0]
    return max(0, int(running) - 1)


def file_type_name(ftype: int | None) -> str | None:
    """llama.cpp's name for a GGUF file type, e.g. 7 -> ``Q8_0``."""
    if ftype is None:
        return None
    import llama_cpp

    name = llama_cpp.llama_ftype_name(int(ftype))
    return name.decode() if name else str(ftype)


class _LlamaCodec:
    """The GGUF's own tokenizer behind the ``_requests.Codec`` protocol."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._prefix_text = llm.detokenize([self.prefix_id], special=True).decode("utf-8", errors="replace")

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """llama.cpp's tokens; as ``HFLM.tok_encode``, a text that starts with the BOS text (a
        rendered chat template such as Gemma's ``<bos><start_of_turn>``) gets no second BOS."""
        if add_special and self._prefix_text and text.startswith(self._prefix_text):
            add_special = False
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)

    def decode(self, ids: Sequence[int]) -> str:
        return self._llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    @property
    def prefix_id(self) -> int:
        bos = self._llm.token_bos()
        return bos if bos >= 0 else self._llm.token_eos()


class GGUFBackend(Backend):
    """``backend: gguf``: a llama-cpp-python ``Llama``, scored through :class:`.gguf_batch.BatchScorer`."""

    name = "gguf"

    def __init__(self, spec: Any, device: str | None = None, batch: BatchSetting | None = None) -> None:
        super().__init__(spec, device, batch)
        self._llm: Any = None
        self._codec: _LlamaCodec | None = None
        self._scorer: BatchScorer | None = None
        self._threads: int | None = None
        self._header: dict[str, Any] = {}
        self._path = Path(str(spec.model))

    # -- lifecycle -------------------------------------------------------------------------
    def load(self) -> None:
        if self._llm is not None:
            return
        self._path = self._model_path()
        self._header = check_gguf_file(self._path, self.spec.name)
        import llama_cpp

        self._threads = self._pick_threads()
        settings = context_settings(self._header.get("n_vocab") or 2**18, self.n_batch)
        try:
            with without_extra_buffers(**settings):
                self._llm = llama_cpp.Llama(
                    model_path=str(self._path),
                    n_ctx=self.spec.n_ctx,
                    n_batch=self.n_batch,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,  # prompts and scoring run on these, not n_threads
                    n_gpu_layers=self._gpu_layers(),
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"expert '{self.spec.name}': llama.cpp could not load {self._path}: {exc}") from None
        self._codec = _LlamaCodec(self._llm)
        self._scorer = BatchScorer(self._llm, self.n_batch, self.spec.name)

    @property
    def n_batch(self) -> int:
        """Tokens per llama.cpp decode: the adapter's ``n_batch``, else llama.cpp's 512, within ``n_ctx``.

        Not the command line's ``--batch_size``: that sets how many requests each call gets;
        the requests of a call that share a context are decoded together.
        """
        return min(int(self.spec.n_batch or 512), int(self.spec.n_ctx))

    def _pick_threads(self) -> int:
        """The adapter's ``n_threads``, else the CPUs this process may use less those busy now.

        llama.cpp's threads spin at each barrier of the graph: when another process holds a core,
        a thread waiting for a descheduled peer burns its time slice (measured on 2 busy cores:
        2 threads 8x slower than 1), so the default leaves busy cores alone. Busy means runnable
        now (:func:`busy_cpus`), not the 1-minute load average: that still counts a process that
        just ended (a run right after another got 1 thread of 2 and took 40% longer, measured).
        """
        if self.spec.n_threads:
            return int(self.spec.n_threads)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(cpus, cpus - busy_cpus()))

    def batch_report(self) -> dict[str, Any]:
        return {**super().batch_report(), "n_batch": self.n_batch}

    def _model_path(self) -> Path:
        """The local file; with a ``filename`` field, ``model`` is a hub repository to fetch it from."""
        filename = getattr(self.spec, "filename", None)
        if not filename:
            return Path(self.spec.model)
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(repo_id=self.spec.model, filename=filename, revision=self.spec.revision))
        except Exception as exc:
            raise BackendError(
                f"expert '{self.spec.name}': could not fetch {filename} from {self.spec.model}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            ) from None

    def _gpu_layers(self) -> int:
        """``n_gpu_layers`` as configured, or 0 when the expert is pinned to the CPU."""
        return 0 if (self.device or self.spec.device) == "cpu" else int(self.spec.n_gpu_layers)

    def close(self) -> None:
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self._codec = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            self.load()
        return self._llm

    @property
    def codec(self) -> _LlamaCodec:
        self.llm  # noqa: B018 - loads on first use
        assert self._codec is not None
        return self._codec

    @property
    def max_length(self) -> int:
        n_ctx = int(self.spec.n_ctx)
        return min(int(self.spec.max_length), n_ctx) if self.spec.max_length else n_ctx

    # -- scoring ---------------------------------------------------------------------------
    def _score_all(self, jobs: list[rq.ScoreJob]) -> list[tuple[float, bool]]:
        scored = [Scored(rq.scoring_input(job, self.max_length, self.spec.name), job.continuation) for job in jobs]
        self.llm  # noqa: B018 - loads on first use
        assert self._scorer is not None
        return self._scorer.score(scored)

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        return self._score_all([rq.encode_pair(self.codec, *req.args) for req in requests])

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        windows = [rq.rolling_jobs(self.codec, req.args[0], self.max_length) for req in requests]
        scores = iter(self._score_all([job for jobs in windows for job in jobs]))
        return [sum(next(scores)[0] for _ in jobs) for jobs in windows]

    # -- generation ------------------------------------------------------------------------
    def _eos_text(self) -> str | None:
        eos = self.llm.token_eos()
        return self.llm.detokenize([eos], special=True).decode("utf-8", errors="replace") if eos >= 0 else None

    def generate_until(self, requests: list[Instance]) -> list[str]:
        out: list[str] = []
        for req in requests:
            context, gen_kwargs = req.args
            settings = rq.gen_settings(gen_kwargs, self._eos_text())
            budget = rq.context_budget(self.max_length, settings.max_gen_toks, self.spec.name)
            prompt = self.codec.encode(context)[-budget:]
            text = self._complete(prompt, settings)
            out.append(text)
        return out

    def _complete(self, prompt: list[int], settings: rq.GenSettings) -> str:
        """Greedy (or sampled) tokens until EOS, ``max_gen_toks`` or a stop string.

        Decoded here rather than by ``create_completion``, which drops invalid UTF-8 bytes: a
        byte-level tokenizer's partial characters then read as U+FFFD, as the HF decoder writes.
        """
        text = ""
        for text in self._tokens_text(prompt, settings):  # noqa: B007 (the last text yielded is the answer)
            pass
        return text

    def _tokens_text(self, prompt: list[int], settings: rq.GenSettings) -> Iterator[str]:
        """The text so far (cut before any stop string) after each generated token."""
        llm = self.llm
        eos = llm.token_eos()
        greedy = settings.temperature <= 0
        new: list[int] = []
        stream = llm.generate(prompt, temp=settings.temperature, top_k=1 if greedy else 0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
        try:
            for token in stream:
                if token == eos:
                    break
                new.append(token)
                text = self._decode(new)
                yield rq.cut_at_stops(text, settings.until)
                if len(new) >= settings.max_gen_toks or any(s in text for s in settings.until):
                    break
        finally:
            stream.close()

    def _decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    # -- reporting -------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self.codec.encode(text, add_special=False))

    streams = True

    def stream(self, prompt: str, gen_kwargs: dict[str, Any]) -> Iterator[str]:
        """New text as each token decodes, under the request's ``generate_until`` kwargs."""
        settings = rq.gen_settings(gen_kwargs, self._eos_text())
        budget = rq.context_budget(self.max_length, settings.max_gen_toks, self.spec.name)
        shown = ""
        for text in self._tokens_text(self.codec.encode(prompt)[-budget:], settings):
            piece, shown = text[len(shown) :], text
            if piece:
                yield piece

    def compute_device(self) -> str:
        """The CPU when no layer is offloaded (``n_gpu_layers: 0``, or a llama.cpp built
        without GPU support), even on a GPU host: its energy and memory are the CPU's."""
        import llama_cpp

        offloads = self._gpu_layers() != 0 and bool(llama_cpp.llama_supports_gpu_offload())
        return (self.device or "cpu") if offloads else "cpu"

    def info(self) -> dict[str, Any]:
        import llama_cpp

        from medmoe_lm_eval.harness.backends.quant_info import quantization_info

        path = self._path
        quant = quantization_info(path) if path.is_file() else None
        if quant is not None:
            quant["description"] = file_type_name(quant.get("file_type"))  # llama.cpp's words, e.g. "Q4_K - Medium"
        return {
            "backend": self.name,
            "model": str(self._path),
            "architecture": self._header.get("general.architecture"),
            "quantization": quant,
            "n_ctx": self.spec.n_ctx,
            "n_batch": self.n_batch,
            "n_threads": self._threads,
            "n_gpu_layers": self._gpu_layers(),
            "llama_cpp_python": llama_cpp.__version__,
            "file_bytes": path.stat().st_size if path.is_file() else None,
        }

"""transformers experts (full precision, AWQ, GPTQ) through lm-eval's own ``HFLM``.

Wrapping rather than re-implementing is what makes a one-expert ``medmoe`` candidate score
exactly like ``lm_eval --model hf``: tokenisation, BOS handling, truncation and batching are
lm-eval's. AWQ/GPTQ checkpoints need nothing special here: transformers reads their
``quantization_config`` and loads them through gptqmodel.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.batching import HF_MAX_BATCH_SIZE, BatchSetting

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance


class HFBackend(Backend):
    name = "hf"

    batch_unit = "sequences per forward pass"

    def __init__(self, spec: Any, device: str | None = None, batch: BatchSetting | None = None) -> None:
        super().__init__(spec, device, batch)
        self.lm: Any = None  # lm-eval's HFLM once loaded (imported lazily: it pulls in torch)

    def load(self) -> None:
        from lm_eval.models.huggingface import HFLM

        from medmoe_lm_eval.harness.backends.quant_info import check_quantized_loadable

        spec = self.spec
        try:
            check_quantized_loadable(spec.model, self.device or "cpu")
            self.lm = HFLM(
                pretrained=spec.model,
                revision=spec.revision or "main",
                device=self.device or "cpu",
                dtype=spec.dtype,
                batch_size=self.batch.lm_eval_value,
                max_batch_size=self.batch.max_size or HF_MAX_BATCH_SIZE,
                max_length=spec.max_length,
                trust_remote_code=spec.trust_remote_code,
                tokenizer=spec.tokenizer,
                add_bos_token=spec.add_bos_token,
            )
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(
                f"expert '{spec.name}': could not load model '{spec.model}': {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc

    def close(self) -> None:
        if self.lm is None:
            return
        on_cuda = str(self.device or "").startswith("cuda")
        self.lm._model = None
        self.lm = None
        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    # -- batching --------------------------------------------------------------------------
    def prepare(self, request_type: str, requests: list[Instance]) -> int:
        """``auto``: ``HFLM``'s own detection, once for the expert's whole share of the type.

        ``HFLM`` detects in every call (on the call's longest request for loglikelihood, on its
        full window otherwise); the model calls an expert once per task and batch of documents,
        so the size is detected here on the same request ``--model hf`` would use and then
        fixed for the calls that follow. ``auto:N`` is detected once as well (``HFLM`` would
        re-detect N times as requests get shorter).
        """
        if not self.batch.is_auto:
            return super().prepare(request_type, requests)
        if request_type == "loglikelihood" and requests:
            pairs = [self._encode(*r.args) for r in requests]
            longest = max(pairs, key=lambda p: len(p[0]) + len(p[1]))
            size = int(self.lm._detect_batch_size([(None, *longest)], 0))
        else:
            size = int(self.lm._detect_batch_size())
        self.effective_batch[request_type] = size
        return size

    def _encode(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """``HFLM.loglikelihood``'s tokenization of one request (an empty context is the prefix token)."""
        if context == "":
            return [self.lm.prefix_token_id], self.lm.tok_encode(continuation)
        return self.lm._encode_pair(context, continuation)

    def _run(self, request_type: str, requests: list[Instance]) -> list[Any]:
        """One ``HFLM`` call at the batch size ``prepare`` settled on (lm-eval's bars off: the model shows one)."""
        fixed = self.effective_batch.get(request_type) if self.batch.is_auto else None
        if fixed is None:
            return getattr(self.lm, request_type)(requests, disable_tqdm=True)
        self.lm.batch_size_per_gpu = fixed
        try:
            return getattr(self.lm, request_type)(requests, disable_tqdm=True)
        finally:
            self.lm.batch_size_per_gpu = "auto"

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        return self._run("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        return self._run("loglikelihood_rolling", requests)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        return self._run("generate_until", requests)

    streams = True

    def stream(self, prompt: str, gen_kwargs: dict[str, Any]) -> Iterator[str]:
        """Tokens as transformers produces them (``TextIteratorStreamer`` on a worker thread).

        The prompt is left-truncated to the window like ``HFLM`` does; generation is greedy
        unless ``do_sample`` asks otherwise, and stops at EOS, ``max_gen_toks`` or a stop string.
        """
        import threading

        import torch
        from lm_eval.models.utils_hf import stop_sequences_criteria
        from transformers import TextIteratorStreamer

        from medmoe_lm_eval.harness.backends import _requests as rq
        from medmoe_lm_eval.harness.backends.base import pieces_until

        lm = self.lm
        if lm is None:
            raise BackendError(f"expert '{self.spec.name}': stream() before load()")
        tokenizer, model = lm.tokenizer, lm.model
        settings = rq.gen_settings(gen_kwargs, None)
        budget = rq.context_budget(lm.max_length, settings.max_gen_toks, self.spec.name)
        ids = torch.tensor([lm.tok_encode(prompt)[-budget:]], device=model.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = {"do_sample": True, "temperature": settings.temperature} if settings.temperature > 0 else {"do_sample": False}
        kwargs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": settings.max_gen_toks,
            "streamer": streamer,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
            **sampling,
        }
        if settings.until:  # stop generating at a stop string, as HFLM does, not only stop showing
            kwargs["stopping_criteria"] = stop_sequences_criteria(tokenizer, settings.until, ids.shape[1], 1)
        failed: list[BaseException] = []

        def generate() -> None:
            try:
                model.generate(**kwargs)
            except BaseException as exc:  # surfaced below; the streamer must end either way
                failed.append(exc)
                streamer.end()

        ended = [False]

        def pieces() -> Iterator[str]:
            yield from streamer
            ended[0] = True  # the streamer blocks if asked again after its end

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        try:
            yield from pieces_until(pieces(), settings.until)
        finally:
            if not ended[0]:  # stopped at a stop string: drain so generate() finishes first
                for _ in streamer:
                    pass
            worker.join()
        if failed:
            raise BackendError(f"expert '{self.spec.name}': streaming generation failed: {type(failed[0]).__name__}: {failed[0]}") from failed[0]

    def count_tokens(self, text: str) -> int:
        return len(self.lm.tok_encode(text))

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        enc = self.lm.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in enc]

    @property
    def max_length(self) -> int | None:
        return self.lm.max_length if self.lm is not None else self.spec.max_length

    def info(self) -> dict[str, Any]:
        from medmoe_lm_eval.harness.backends.quant_info import quantization_info

        model = getattr(self.lm, "_model", None) if self.lm is not None else None
        return {
            "backend": self.name,
            "model": self.spec.model,
            "revision": self.spec.revision,
            "dtype": str(getattr(model, "dtype", self.spec.dtype)),
            "num_parameters": int(model.num_parameters()) if model is not None else None,
            "quantization": quantization_info(self.spec.model),
        }

"""Making a GPTQ, AWQ or GGUF candidate from a full-precision model, with its adapter YAML.

:func:`quantize` writes the checkpoint (or ``.gguf`` file) into ``out`` and ``out/adapter.yaml``,
a ``kind: single`` candidate that ``medmoe eval --model medmoe --model_args adapter=<out>/adapter.yaml`` runs at
once. GPTQ/AWQ go through gptqmodel (``quantization.gptq``); GGUF through ``gguf``'s writer and
llama.cpp's quantizer (``quantization.gguf_convert``). This is library code: it reports through
callbacks and raises one-line ``BackendError``s; the ``medmoe quantize`` command is ``cli.quantize``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.backends.quant_info import quantization_info

METHODS = ("gptq", "awq", "gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_k_m", "dequantize")

#: ``progress(stage, done, total)``: how far a long step has come.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class QuantizeJob:
    """What to quantize and how; the fields mirror ``medmoe quantize``'s flags."""

    model: Path
    method: str
    out: Path
    calibration: str | None = None
    n_samples: int = 128
    calibration_length: int = 512
    domain: str = "general"
    name: str | None = None
    parent: str | None = None  #: the full-precision candidate's name (default: the model folder's name)


def _silent(_message: str) -> None:
    """The default reporter: library callers that want no output get none."""


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    """The default progress callback."""


def _check_model_dir(model: Path) -> None:
    if not (model / "config.json").is_file():
        raise BackendError(
            f"--model: {model} has no config.json; fix: pass a folder written by save_pretrained (hub ids: download with `huggingface-cli download` first)"
        )
    if quantization_info(model):
        raise BackendError(f"--model: {model} is already quantized ({quantization_info(model)}); fix: start from the full-precision checkpoint")


def _calibration(model: Path, ref: str | None, n_samples: int, length: int) -> Any:
    from transformers import AutoTokenizer

    from medmoe_lm_eval.quantization.calibration_texts import load_texts, tokenize

    if not ref:
        raise BackendError("--calibration is required for gptq/awq; fix: pass a JSONL file with a 'text' field or a domain such as biomedical")
    texts, source = load_texts(ref)
    return tokenize(texts, AutoTokenizer.from_pretrained(str(model)), n_samples, length, source)


def _cpu_dtype() -> str:
    """Quantized torch kernels on CPU want float32 activations; GPUs run them in float16."""
    import torch

    return "float16" if torch.cuda.is_available() else "float32"


def _quantize_4bit(job: QuantizeJob, say: Callable[[str], None]) -> dict[str, Any]:
    from medmoe_lm_eval.quantization.gptq import quantize_4bit

    cal = _calibration(job.model, job.calibration, job.n_samples, job.calibration_length)
    say(f"{job.method.upper()}: {cal.summary()}")
    report = quantize_4bit(job.model, job.method, cal.rows, job.out)
    report["calibration"] = cal.summary()
    expert = {"backend": "hf", "model": ".", "dtype": _cpu_dtype()}
    return {"report": report, "expert": expert}


def _gguf(model: Path, method: str, out: Path, say: Callable[[str], None], progress: Progress) -> dict[str, Any]:
    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf, quantize_gguf

    qtype = method.removeprefix("gguf-")
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    base_type = qtype if qtype in ("f32", "f16") else ("f32" if str(cfg.get("dtype") or cfg.get("torch_dtype")) == "float32" else "f16")
    target = out / f"{model.name}-{qtype}.gguf"
    base = target if qtype in ("f32", "f16") else out / f"{model.name}-{base_type}.tmp.gguf"
    stage = f"GGUF {base_type}: writing tensors"
    hf_to_gguf(model, base, base_type, progress=lambda _s, done, total: progress(stage, done, total))
    if base != target:
        say(f"llama.cpp quantizer: {base_type} -> {qtype}")
        try:
            quantize_gguf(base, target, qtype)
        finally:
            base.unlink(missing_ok=True)
    n_ctx = int(min(cfg.get("max_position_embeddings") or 2048, 4096))
    return {"report": quantization_info(target), "expert": {"backend": "gguf", "model": f"./{target.name}", "n_ctx": n_ctx}}


def write_adapter(
    out: Path, name: str, description: str, expert: dict[str, Any], domain: str, parent: str | None = None, parent_model: str | None = None
) -> Path:
    """``<out>/adapter.yaml``: a ``kind: single`` candidate whose paths are relative to it.

    ``parent``/``parent_model`` record what the copy was made from, so ``medmoe fidelity`` can pair
    the copy with its full-precision candidate on the same documents.
    """
    data: dict[str, Any] = {"name": name, "description": description, "kind": "single"}
    data.update({k: v for k, v in (("parent", parent), ("parent_model", parent_model)) if v})
    data["experts"] = [{"name": name, "domain": domain, **expert}]
    path = out / "adapter.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _dequantize(job: QuantizeJob, say: Callable[[str], None]) -> Path:
    """A GGUF file -> its full-precision transformers folder; the adapter records the file it came from."""
    from medmoe_lm_eval.quantization.dequantize import default_names, dequantize_gguf

    if job.model.suffix != ".gguf" or job.model.is_dir():
        raise BackendError(f"--model: {job.model} is not a .gguf file; fix: --method dequantize reads a GGUF file (other methods read a transformers folder)")
    made = dequantize_gguf(job.model, job.out, say=say)
    name, parent = default_names(job.model)
    desc = f"{job.model.name} dequantized to {made['dtype']} by transformers (medmoe quantize --method dequantize)"
    expert = {"backend": "hf", "model": ".", "dtype": made["dtype"]}
    adapter = write_adapter(job.out, job.name or name, desc, expert, job.domain, parent=job.parent or parent, parent_model=str(job.model))
    say(f"done in {made['seconds']:.1f}s: {job.out} (sha256 of the source {made['sha256'][:16]}...)")
    say(f"adapter: {adapter}")
    return adapter


def quantize(job: QuantizeJob, say: Callable[[str], None] = _silent, progress: Progress = _no_progress) -> Path:
    """Do the work; returns the adapter path. Errors are ``BackendError`` one-liners."""
    if job.method not in METHODS:
        raise BackendError(f"method {job.method!r} is not one of {', '.join(METHODS)}; fix: pick one of those")
    model, out = job.model.expanduser().resolve(), job.out.expanduser().resolve()
    job = QuantizeJob(**{**job.__dict__, "model": model, "out": out})
    if job.method == "dequantize":
        return _dequantize(job, say)
    _check_model_dir(model)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    made = _quantize_4bit(job, say) if job.method in ("gptq", "awq") else _gguf(model, job.method, out, say, progress)
    name = job.name or f"{model.name}-{job.method}".replace("_", "-")
    desc = f"{model.name} quantized with medmoe quantize --method {job.method}"
    adapter = write_adapter(out, name, desc, made["expert"], job.domain, parent=job.parent or model.name, parent_model=str(model))
    say(f"done in {time.perf_counter() - start:.1f}s: {json.dumps(made['report'], default=str)}")
    say(f"adapter: {adapter}")
    return adapter

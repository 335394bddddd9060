"""``medmoe quantize``: make a GPTQ, AWQ or GGUF candidate from a model, with its adapter YAML.

::

    medmoe quantize --model <hf dir> --method gptq|awq|gguf-f16|gguf-q8_0|gguf-q4_0|gguf-q4_k_m \
                    --calibration <file.jsonl | domain | task> --out <dir>

writes the checkpoint (or ``.gguf`` file) into ``<dir>`` and ``<dir>/adapter.yaml``, which
``medmoe eval --adapter <dir>/adapter.yaml`` runs as a ``kind: single`` candidate at once. GPTQ/AWQ
go through gptqmodel (``quantization.gptq``); GGUF through ``gguf``'s writer and llama.cpp's
quantizer (``quantization.gguf_convert``). ``quantization_info`` and ``check_quantized_loadable``
are what the HF backend reports and checks before loading.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from medmoe_lm_eval.backends.base import BackendError
from medmoe_lm_eval.quantization.info import check_quantized_loadable, quantization_info

METHODS = ("gptq", "awq", "gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_k_m")

__all__ = ["METHODS", "add_quantize_arguments", "check_quantized_loadable", "quantization_info", "quantize", "run_quantize"]


def add_quantize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a local HF checkpoint folder (save_pretrained layout)")
    parser.add_argument("--method", required=True, choices=METHODS, help="4-bit GPTQ/AWQ through gptqmodel, or a GGUF type for llama.cpp")
    parser.add_argument("--calibration", default=None, help="GPTQ/AWQ: a JSONL file with a 'text' field, a domain (biomedical, legal, code) or a bundled task name")
    parser.add_argument("--out", required=True, help="output folder for the checkpoint and its adapter.yaml")
    parser.add_argument("--n-samples", type=int, default=128, help="calibration rows (default 128)")
    parser.add_argument("--calibration-length", type=int, default=512, help="tokens per calibration row; longer texts are truncated (default 512)")
    parser.add_argument("--domain", default="general", help="the expert's domain in the written adapter (default general)")
    parser.add_argument("--name", default=None, help="candidate name in the adapter (default <model>-<method>)")


def _say(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(message)


def _check_model_dir(model: Path) -> None:
    if not (model / "config.json").is_file():
        raise BackendError(f"--model: {model} has no config.json; fix: pass a folder written by save_pretrained (hub ids: download with `huggingface-cli download` first)")
    if quantization_info(model):
        raise BackendError(f"--model: {model} is already quantized ({quantization_info(model)}); fix: start from the full-precision checkpoint")


def _calibration(model: Path, ref: str | None, n_samples: int, length: int) -> Any:
    from transformers import AutoTokenizer

    from medmoe_lm_eval.quantization.calibration import load_texts, tokenize

    if not ref:
        raise BackendError("--calibration is required for gptq/awq; fix: pass a JSONL file with a 'text' field or a domain such as biomedical")
    texts, source = load_texts(ref)
    return tokenize(texts, AutoTokenizer.from_pretrained(str(model)), n_samples, length, source)


def _cpu_dtype() -> str:
    """Quantized torch kernels on CPU want float32 activations; GPUs run them in float16."""
    import torch

    return "float16" if torch.cuda.is_available() else "float32"


def _quantize_4bit(model: Path, method: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from medmoe_lm_eval.quantization.gptq import quantize_4bit

    cal = _calibration(model, args.calibration, args.n_samples, args.calibration_length)
    _say(f"[bold]{method.upper()}[/bold]: {cal.summary()}")
    report = quantize_4bit(model, method, cal.rows, out)
    report["calibration"] = cal.summary()
    expert = {"backend": "hf", "model": ".", "dtype": _cpu_dtype()}
    return {"report": report, "expert": expert}


def _gguf(model: Path, method: str, out: Path) -> dict[str, Any]:
    from rich.progress import Progress

    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf, quantize_gguf

    qtype = method.removeprefix("gguf-")
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    base_type = qtype if qtype in ("f32", "f16") else ("f32" if str(cfg.get("dtype") or cfg.get("torch_dtype")) == "float32" else "f16")
    target = out / f"{model.name}-{qtype}.gguf"
    base = target if qtype in ("f32", "f16") else out / f"{model.name}-{base_type}.tmp.gguf"
    with Progress(transient=True) as bar:
        task = bar.add_task(f"GGUF {base_type}: writing tensors", total=None)
        hf_to_gguf(model, base, base_type, progress=lambda _s, done, total: bar.update(task, completed=done, total=total))
    if base != target:
        _say(f"llama.cpp quantizer: {base_type} -> {qtype}")
        try:
            quantize_gguf(base, target, qtype)
        finally:
            base.unlink(missing_ok=True)
    n_ctx = int(min(cfg.get("max_position_embeddings") or 2048, 4096))
    return {"report": quantization_info(target), "expert": {"backend": "gguf", "model": f"./{target.name}", "n_ctx": n_ctx}}


def write_adapter(out: Path, name: str, description: str, expert: dict[str, Any], domain: str) -> Path:
    """``<out>/adapter.yaml``: a ``kind: single`` candidate whose paths are relative to it."""
    data = {"name": name, "description": description, "kind": "single", "experts": [{"name": name, "domain": domain, **expert}]}
    path = out / "adapter.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def quantize(args: argparse.Namespace) -> Path:
    """Do the work; returns the adapter path. Errors are ``BackendError`` one-liners."""
    model, out = Path(args.model).expanduser().resolve(), Path(args.out).expanduser().resolve()
    _check_model_dir(model)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    made = _quantize_4bit(model, args.method, args, out) if args.method in ("gptq", "awq") else _gguf(model, args.method, out)
    name = args.name or f"{model.name}-{args.method}".replace("_", "-")
    desc = f"{model.name} quantized with medmoe quantize --method {args.method}"
    adapter = write_adapter(out, name, desc, made["expert"], args.domain)
    _say(f"done in {time.perf_counter() - start:.1f}s: {json.dumps(made['report'], default=str)}")
    _say(f"adapter: {adapter}")
    return adapter


def run_quantize(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success, 2 with one line on stderr for a user-fixable error."""
    from medmoe_lm_eval.quantization.gguf_convert import ConversionError

    try:
        quantize(args)
    except (BackendError, ConversionError) as exc:
        print(f"medmoe quantize: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a library failing deep inside: still one line, with where to look
        if os.environ.get("MEDMOE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"medmoe quantize: error: {args.method} failed: {type(exc).__name__}: {first} (set MEDMOE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medmoe quantize", description=__doc__.splitlines()[0])
    add_quantize_arguments(parser)
    return run_quantize(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""A GGUF file -> a full-precision transformers folder, recording what it came from.

Real small models reach us as quantized GGUF files (``real_models``), but a fidelity analysis needs
a full-precision parent and the GPTQ/AWQ/GGUF writers need a transformers checkpoint. transformers
dequantizes a GGUF file on load (``from_pretrained(dir, gguf_file=name)``, Llama and Gemma 3 among
its mappings); the weights it writes are exactly the file's dequantized values (float32 holds every
Q4/Q8 value exactly), so the folder *is* that model in full precision, and the copies made from it
measure what re-quantizing costs. The load leaves a GGUF ``quantization_config`` and quantizer on
the model: both are cleared before ``save_pretrained`` so the folder reads as the plain
full-precision checkpoint it is (and ``medmoe quantize`` accepts it as a source).

Bad input fails before anything loads, in one line naming the file and the fix: a file that is not
GGUF, cut short or corrupt (``check_gguf_file``), and a catalogued real model file whose bytes are
not the published ones (sha256, ``real_models.verify``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.backends.gguf import check_gguf_file
from medmoe_lm_eval.real_models import CATALOGUE, ModelFileError, RealModel, sha256_of, verify

#: written next to the weights: the GGUF the folder was made from (path, sha256, type)
PROVENANCE = "dequantized_from.json"


def _catalogued(gguf: Path) -> RealModel | None:
    return next((m for m in CATALOGUE if m.filename == gguf.name), None)


def check_source(gguf: Path) -> dict[str, Any]:
    """Refuse a missing, foreign, truncated, corrupt or (for a known model) altered file; returns its header fields."""
    known = _catalogued(gguf) if gguf.is_file() else None
    if known is not None:  # its size and sha256 are published: the precise message first
        try:
            verify(known, gguf)
        except ModelFileError as exc:
            raise BackendError(f"--model: {exc}") from None
    return check_gguf_file(gguf, "--model")


def default_names(gguf: Path) -> tuple[str, str]:
    """(copy name, parent name): a known model's bundled adapter name, else the file's stem."""
    known = _catalogued(gguf)
    base = known.name if known else re.sub(r"[^a-z0-9_.\-]+", "-", gguf.stem.lower()).strip("-")
    return f"{base}-f32", base


def _load(gguf: Path, dtype: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype))
    return model, tokenizer


def _plain(model: Any) -> Any:
    """Forget the GGUF quantizer, so ``save_pretrained`` writes a plain full-precision checkpoint."""
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    model.is_quantized = False
    return model


def dequantize_gguf(gguf: Path, out: Path, dtype: str = "float32", say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Write ``out`` (config.json, safetensors, tokenizer, :data:`PROVENANCE`); returns the provenance."""
    gguf = gguf.expanduser().resolve()
    header = check_source(gguf)
    start = time.perf_counter()
    say(f"dequantizing {gguf.name} ({header.get('general.architecture', '?')}) to {dtype} with transformers")
    model, tokenizer = _load(gguf, dtype)
    out.mkdir(parents=True, exist_ok=True)
    _plain(model).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in config:  # a transformers that writes it anyway: the folder must read as full precision
        del config["quantization_config"]
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    provenance = {
        "source": str(gguf),
        "sha256": sha256_of(gguf),
        "bytes": gguf.stat().st_size,
        "file_type": header.get("general.file_type"),
        "dtype": dtype,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance

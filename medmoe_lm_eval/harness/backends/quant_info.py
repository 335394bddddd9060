"""What a checkpoint is quantized to, and whether this host can run it, read without loading it.

``hf.py`` reports :func:`quantization_info` in the results and calls
:func:`check_quantized_loadable` before loading, so a GPU-only format on a CPU host fails with one
line naming the file, the field and the fix instead of deep inside a kernel import.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from medmoe_lm_eval.harness.backends.base import BackendError

#: (method, format) pairs whose only kernels need a CUDA GPU; CPU has torch kernels for the rest
#: (GPTQ ``gptq``/``gptq_v2`` and AWQ ``gemm`` through gptqmodel's torch backends).
_GPU_ONLY_FORMATS = {
    "gptq": {"marlin": "Marlin", "bitblas": "BitBLAS", "exllama": "ExLlama", "exllamav2": "ExLlamaV2", "qqq": "QQQ"},
    "awq": {"gemv": "AWQ GEMV", "gemv_fast": "AWQ GEMV-fast", "llm-awq": "llm-awq", "marlin": "Marlin", "exllama": "ExLlama", "bitblas": "BitBLAS"},
}
_GPU_ONLY_METHODS = {"fp8": "FP8", "fbgemm_fp8": "FBGEMM FP8", "eetq": "EETQ", "exl2": "ExLlamaV2", "exl3": "ExLlamaV3", "vptq": "VPTQ"}
_NEEDS_GPTQMODEL = {"gptq", "awq"}


def _gguf_type(path: Path) -> dict[str, Any]:
    import gguf

    from medmoe_lm_eval.harness.backends.gguf_header import read_header

    raw = read_header(path).metadata.get("general.file_type")  # not GGUFReader: 13 s on a 262k vocabulary
    ftype = int(raw) if raw is not None else None
    name = gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix("ALL_") if ftype is not None else None
    digits = re.match(r"[A-Z]+(\d+)", name or "")
    bits = int(digits.group(1)) if digits else None
    group = 256 if name and "_K" in name else (32 if name and name.startswith(("Q4_", "Q5_", "Q8_")) else None)
    return {"method": "gguf", "bits": bits, "group_size": group, "type": name, "file_type": ftype}


def _config_quant(model_dir: Path) -> dict[str, Any] | None:
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        return None
    qc = json.loads(cfg_path.read_text(encoding="utf-8")).get("quantization_config")
    return qc if isinstance(qc, dict) else None


def _method(qc: dict[str, Any]) -> str:
    return str(qc.get("quant_method") or qc.get("method") or "unknown").lower()


def _format(qc: dict[str, Any]) -> str | None:
    fmt = qc.get("checkpoint_format") or qc.get("format") or qc.get("version")
    return str(fmt).lower() if fmt else None


def quantization_info(model: str | Path) -> dict[str, Any] | None:
    """``{"method", "bits", "group_size", "type"}`` of a local checkpoint or ``.gguf`` file.

    None for a full-precision checkpoint; also None for a hub id that is not on disk (nothing
    is downloaded to find out).
    """
    path = Path(str(model)).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_type(path)
    if not path.is_dir():
        return None
    qc = _config_quant(path)
    if qc is None:
        return None
    return {"method": _method(qc), "bits": qc.get("bits"), "group_size": qc.get("group_size"), "type": _format(qc)}


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def check_quantized_loadable(model: str | Path, device: str | None) -> None:
    """Raise ``BackendError`` (one line) if the checkpoint cannot run on ``device`` here."""
    path = Path(str(model)).expanduser()
    if not path.is_dir():
        return  # hub ids are checked by transformers when they arrive
    qc = _config_quant(path)
    if qc is None:
        return
    method, fmt = _method(qc), _format(qc)
    where = f"{path / 'config.json'}: quantization_config"
    on_gpu = str(device or "cpu").startswith(("cuda", "auto")) and _cuda_available()
    if not on_gpu:
        kernel = _GPU_ONLY_METHODS.get(method) or _GPU_ONLY_FORMATS.get(method, {}).get(fmt or "")
        if kernel:
            field = "quant_method" if method in _GPU_ONLY_METHODS else "format"
            value = method if field == "quant_method" else fmt
            raise BackendError(
                f"{where}.{field}='{value}' needs a CUDA GPU ({kernel} kernel) and this host has none; "
                "fix: run it on a GPU host, or make a CPU-capable copy with `medmoe quantize --method gptq|awq|gguf-q4_k_m`"
            )
    if method in _NEEDS_GPTQMODEL:
        try:
            import gptqmodel  # noqa: F401
        except ImportError:
            raise BackendError(f"{where}.quant_method='{method}' needs gptqmodel; fix: pip install 'medmoe-lm-eval[quant]'") from None

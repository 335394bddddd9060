"""GPTQ and AWQ 4-bit checkpoints through gptqmodel (the maintained successor of AutoGPTQ/AutoAWQ).

On a CPU host gptqmodel quantizes with its torch kernels: GPTQ packs to the ``gptq`` format and
AWQ runs its torch backend (``BACKEND.AWQ_TORCH``) to the ``gemm`` format, both of which load on
CPU and GPU alike. ``GPTQMODEL_CPU_WORKERS`` sizes its CPU thread pool; gptqmodel needs at least
2 (its model loader asks for 2), so a smaller value is raised to 2. Its per-layer quantization log
lands in ``<out>/logs/``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmoe_lm_eval.harness.backends.base import BackendError

METHODS = ("gptq", "awq")


def pick_group_size(model_dir: Path, wanted: int = 128) -> int:
    """The largest of 128/64/32 (at most ``wanted``) dividing every linear layer's input width."""
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    widths = [int(cfg[k]) for k in ("hidden_size", "intermediate_size") if isinstance(cfg.get(k), int)]
    common = math.gcd(*widths) if widths else wanted
    for size in (128, 64, 32):
        if size <= wanted and common % size == 0:
            return size
    raise BackendError(
        f"{model_dir}/config.json: hidden_size/intermediate_size {widths} have no group size of 32, 64 or 128 dividing them; fix: use --method gguf-q4_0"
    )


def _cpu_workers() -> None:
    value = os.environ.get("GPTQMODEL_CPU_WORKERS")
    if value is None or not value.isdigit() or int(value) < 2:
        os.environ["GPTQMODEL_CPU_WORKERS"] = str(max(2, min(os.cpu_count() or 2, 8)))


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def quantize_4bit(
    model_dir: str | Path, method: str, calibration: list[dict[str, list[int]]], out: str | Path, group_size: int | None = None
) -> dict[str, Any]:
    """Quantize ``model_dir`` to 4-bit ``method`` with ``calibration`` rows; save to ``out``."""
    if method not in METHODS:
        raise BackendError(f"method '{method}' is not one of {METHODS}")
    _cpu_workers()
    try:
        import torch
        from gptqmodel import BACKEND, AWQConfig, GPTQConfig, GPTQModel
    except ImportError:
        raise BackendError("--method gptq/awq needs gptqmodel; fix: pip install 'medmoe-lm-eval[quant]'") from None
    model_dir, out = Path(model_dir).resolve(), Path(out).resolve()
    group = group_size or pick_group_size(model_dir)
    on_gpu = torch.cuda.is_available()
    if method == "gptq":
        qcfg = GPTQConfig(bits=4, group_size=group, offload_to_disk=False)
        backend = BACKEND.AUTO
    else:
        qcfg = AWQConfig(bits=4, group_size=group)
        backend = BACKEND.AUTO if on_gpu else BACKEND.AWQ_TORCH
    out.mkdir(parents=True, exist_ok=True)
    with _working_dir(out):  # gptqmodel writes its per-layer log to ./logs: keep it with the checkpoint
        model = GPTQModel.load(str(model_dir), qcfg, device="cuda" if on_gpu else "cpu")
        model.quantize(calibration, batch_size=1, backend=backend, calibration_data_min_length=1)
        model.save(str(out))
    return {"method": method, "bits": 4, "group_size": group, "device": "cuda" if on_gpu else "cpu"}

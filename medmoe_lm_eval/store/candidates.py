"""How a run describes its candidate: name, kind, backend, quantization, hardware, peak memory.

Plain lm-eval runs carry only ``model_args``; ``medmoe`` runs add ``config.medmoe``. These helpers
turn either into the few strings and numbers every row of the tidy frame shares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medmoe_lm_eval.store.records import KIND_BY_LABEL_PREFIX
from medmoe_lm_eval.store.values import as_dict, number


def model_ref(config: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The model a plain run evaluated: ``pretrained=``/``model=``/``path=`` or ``model_name``."""
    args = config.get("model_args")
    if isinstance(args, str):
        args = dict(part.split("=", 1) for part in args.split(",") if "=" in part)
    args = as_dict(args)
    for key in ("pretrained", "model", "path", "model_path", "engine", "base_url"):
        if isinstance(args.get(key), str) and args[key]:
            return args[key]
    return str(data.get("model_name") or config.get("model") or "unknown")


def short_name(ref: str) -> str:
    """Hub ids stay as they are; local paths shrink to their last component."""
    if ref.startswith(("/", "./", "../", "~")) or (os.sep in ref and Path(ref).exists()):
        return Path(ref.rstrip("/")).name or ref
    return ref


def plain_label(model_type: str, ref: str) -> str:
    """The label of a plain run's candidate (gptq, awq, gguf or full), guessed from its model type and name."""
    low = f"{model_type} {ref}".lower()
    for tag in ("gptq", "awq"):
        if tag in low:
            return tag
    if "gguf" in low or model_type in ("gguf", "ggml"):
        return "gguf"
    return "full"


def kind_of(label: str, adapter_kind: str | None) -> str:
    """The colour group of a candidate: full, AWQ, GPTQ, GGUF, MoE or other."""
    if adapter_kind == "moe":
        return "MoE"
    prefix = label.split("-")[0].lower() if label else ""
    return KIND_BY_LABEL_PREFIX.get(prefix, "other")


def hardware_text(profile: Mapping[str, Any] | None, data: Mapping[str, Any]) -> str | None:
    """``CPU xN / GPU xM`` from the profile's hardware, else from lm-eval's ``pretty_env_info``; ``None`` if neither says."""
    hw = as_dict(as_dict(profile).get("hardware"))
    if hw:
        cpu = f"{hw.get('cpu_model') or 'CPU'} x{hw.get('cpu_cores') or '?'}"
        gpu = f"{hw.get('gpu_name')} x{hw.get('gpu_count') or 1}" if hw.get("gpu_name") else None
        return " / ".join(p for p in (cpu, gpu) if p)
    env = data.get("pretty_env_info")
    if not isinstance(env, str):
        return None
    gpu_match = re.search(r"GPU models and configuration:\s*(.+)", env)
    cpu_match = re.search(r"Model name:\s*(.+)", env)
    parts = [m.group(1).strip() for m in (cpu_match, gpu_match) if m and "Could not collect" not in m.group(1)]
    return " / ".join(parts) or None


def quantization_text(q: Any) -> str:
    """An expert's quantization in a few words (``gptq 4-bit g128``, ``gguf Q4_K_M``); ``none`` without one."""
    q = as_dict(q)
    if not q:
        return "none"
    method = str(q.get("method") or "?")
    if q.get("type"):
        return f"{method} {q['type']}"
    bits = f" {q['bits']}-bit" if q.get("bits") else ""
    group = f" g{q['group_size']}" if q.get("group_size") else ""
    return f"{method}{bits}{group}"


def joined(values: Iterable[str]) -> str:
    """The distinct non-empty values in order, joined with ``+`` (one cell for a mixture's experts); ``none`` if empty."""
    return "+".join(dict.fromkeys(v for v in values if v)) or "none"


def peak_memory(profile: Mapping[str, Any]) -> float:
    """GPU peak (NVML, else torch reserved) when the run used a GPU, else the process's peak RSS."""
    memory = as_dict(profile.get("memory"))
    gpu = as_dict(memory.get("gpu"))
    for key in ("nvml_peak_used_bytes", "torch_max_reserved_bytes", "torch_max_allocated_bytes"):
        if number(gpu.get(key)) > 0:
            return number(gpu[key])
    return number(memory.get("peak_rss_bytes"))

"""What a run ran on, so leaderboard rows from different machines can be told apart.

Versions come from installed package metadata, not from importing the packages: asking for
torch's version must not import torch (seconds) or initialise CUDA.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

import psutil

#: report key -> distribution names to try, first found wins
_PACKAGES = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "lm_eval": ("lm_eval", "lm-eval"),
    "llama_cpp": ("llama_cpp_python", "llama-cpp-python"),
    "nvidia_ml_py": ("nvidia-ml-py",),
}


def _version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def software_info() -> dict[str, Any]:
    """Python and library versions (``None`` for what is not installed)."""
    from medmoe_lm_eval import __version__

    out: dict[str, Any] = {"python": platform.python_version()}
    out.update({key: _version(names) for key, names in _PACKAGES.items()})
    out["medmoe_lm_eval"] = __version__
    return out


@functools.cache
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux; ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware_info(gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU, memory and (when the run used one) the GPU as NVML named it."""
    logical = psutil.cpu_count(logical=True) or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    gpu = gpu or {}
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": psutil.cpu_count(logical=False) or logical,
        "cpu_threads": logical,
        "cpu_threads_usable": usable,
        "ram_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "gpu_name": gpu.get("gpu_name"),
        "gpu_driver": gpu.get("gpu_driver"),
        "gpu_count": gpu.get("gpu_count", 0),
    }

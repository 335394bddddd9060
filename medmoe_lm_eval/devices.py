"""One answer to "which device does ``auto`` mean here", shared by the experts and the profiler.

The pool that loads experts and the profiler that measures them must agree on the device, or the
profile reads GPU counters for a model that runs on the CPU (or the other way round).
"""

from __future__ import annotations


class DeviceError(ValueError):
    """A device was asked for that this machine does not have; the message says the fix."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (``False`` without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(requested: str | None, strict: bool = True) -> str:
    """``auto`` (or nothing) -> ``cuda:0`` when a GPU is visible, else ``cpu``; ``cuda`` -> ``cuda:0``.

    Any other value is returned as given. With ``strict``, a CUDA device on a machine without one
    is an error; the profiler passes ``strict=False`` because it only names the device it watches
    (its NVML readings say for themselves whether a GPU is there).
    """
    if requested in (None, "", "auto"):
        return "cuda:0" if cuda_available() else "cpu"
    assert requested is not None
    if requested.startswith("cuda"):
        if strict and not cuda_available():
            raise DeviceError(f"device '{requested}' asked for but no CUDA device is visible; fix: use device 'auto' or 'cpu'")
        return "cuda:0" if requested == "cuda" else requested
    return requested

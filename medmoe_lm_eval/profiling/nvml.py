"""The GPU as NVML sees it: power, the cumulative energy counter, memory used by our processes.

``pynvml`` (from the ``nvidia-ml-py`` package) is imported only here and only when a profile
asks for a CUDA device, so a CPU run never loads it and tests can put a stand-in module in
``sys.modules["pynvml"]``. No NVML failure escapes: opening returns ``(None, reason)``, and a
reading that fails is recorded by name while the others go on.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: The energy counter is an unsigned 64-bit count of millijoules.
ENERGY_MODULUS_MJ = 2**64
_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED, should a stand-in module lack the constant


def describe_error(nvml: ModuleType | None, call: str, exc: BaseException) -> str:
    """``"<call>: <message> (NVML_ERROR_<NAME>)"``: what the user needs to look up the cause."""
    value = getattr(exc, "value", None)
    names = [k for k, v in vars(nvml).items() if k.startswith("NVML_ERROR_") and v == value] if nvml and value is not None else []
    text = str(exc) or exc.__class__.__name__
    return f"{call}: {text}" + (f" ({names[0]})" if names else "")


def is_not_supported(nvml: ModuleType, exc: BaseException) -> bool:
    return getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED)


def nvml_index(device: str, env: dict[str, str] | None = None) -> int | str:
    """NVML index (or GPU UUID) of a torch-style ``cuda:N`` device.

    NVML numbers every GPU on the machine; CUDA numbers only those in ``CUDA_VISIBLE_DEVICES``,
    so ``cuda:0`` under ``CUDA_VISIBLE_DEVICES=2,3`` is NVML's GPU 2.
    """
    env = dict(os.environ) if env is None else env
    ordinal = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if not visible or ordinal >= len(visible):
        return ordinal
    entry = visible[ordinal]
    return int(entry) if entry.isdigit() else entry


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class NvmlReading:
    """What one sample read; ``None`` where the reading is unsupported or failed."""

    power_w: float | None = None
    energy_mj: int | None = None
    used_bytes: int | None = None
    scope: str | None = None  #: "process" (our pids) or "device" (whole GPU)


class NvmlProbe:
    """One open NVML session on one GPU. ``close()`` shuts NVML down (safe twice)."""

    def __init__(self, nvml: ModuleType, handle: Any, index: int | str, count: int) -> None:
        self.nvml = nvml
        self.handle = handle
        self.index = index
        self.count = count
        self.energy_supported = True
        self.power_supported = True
        self.notes: list[str] = []
        self._open = True

    @classmethod
    def open(cls, device: str) -> tuple[NvmlProbe | None, str | None]:
        """The probe for ``device``, or ``None`` and the reason NVML cannot be used."""
        try:
            import pynvml as nvml
        except ImportError as exc:
            return None, f"pynvml is not importable ({exc}); install nvidia-ml-py for GPU figures"
        call = "nvmlInit"
        try:
            nvml.nvmlInit()
        except Exception as exc:
            return None, describe_error(nvml, call, exc)
        try:
            call = "nvmlDeviceGetCount"
            count = int(nvml.nvmlDeviceGetCount())
            if count == 0:
                raise LookupError("NVML sees no GPU on this machine")
            index = nvml_index(device)
            if isinstance(index, str):
                call = "nvmlDeviceGetHandleByUUID"
                handle = nvml.nvmlDeviceGetHandleByUUID(index)
            else:
                call = "nvmlDeviceGetHandleByIndex"
                if index >= count:
                    raise LookupError(f"{device} maps to NVML GPU {index}, but NVML sees {count}")
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            cls._shutdown(nvml)
            return None, describe_error(nvml, call, exc)
        return cls(nvml, handle, index, count), None

    @staticmethod
    def _shutdown(nvml: ModuleType) -> None:
        with contextlib.suppress(Exception):  # nothing left to release
            nvml.nvmlShutdown()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._shutdown(self.nvml)

    # -- static facts ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """GPU name and driver version (``None`` where NVML would not say)."""
        out: dict[str, Any] = {"gpu_name": None, "gpu_driver": None, "gpu_count": self.count, "nvml_index": self.index}
        for key, fn, args in (("gpu_name", "nvmlDeviceGetName", (self.handle,)), ("gpu_driver", "nvmlSystemGetDriverVersion", ())):
            try:
                out[key] = _text(getattr(self.nvml, fn)(*args))
            except Exception as exc:
                self.notes.append(describe_error(self.nvml, fn, exc))
        return out

    # -- readings ---------------------------------------------------------------------------------
    def read(self, pids: set[int], errors: list[str]) -> NvmlReading:
        """Power, energy counter and memory; failures go to ``errors``, unsupported ones stop."""
        reading = NvmlReading()
        if self.energy_supported:
            reading.energy_mj = self._call("nvmlDeviceGetTotalEnergyConsumption", errors, "energy")
        if self.power_supported:
            mw = self._call("nvmlDeviceGetPowerUsage", errors, "power")
            reading.power_w = None if mw is None else mw / 1000.0
        reading.used_bytes, reading.scope = self._memory(pids, errors)
        return reading

    def _call(self, fn: str, errors: list[str], what: str) -> Any:
        try:
            return getattr(self.nvml, fn)(self.handle)
        except Exception as exc:
            if is_not_supported(self.nvml, exc):
                setattr(self, f"{what}_supported", False)
                self.notes.append(describe_error(self.nvml, fn, exc))
            else:
                errors.append(describe_error(self.nvml, fn, exc))
            return None

    def _memory(self, pids: set[int], errors: list[str]) -> tuple[int | None, str | None]:
        """GPU memory of our processes; the whole device's use when NVML hides per-process use
        (containers with their own pid namespace, or drivers that report no per-process figure)."""
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
            used = [p.usedGpuMemory for p in procs if p.pid in pids and isinstance(p.usedGpuMemory, int)]
            if used:
                return sum(used), "process"
        except Exception as exc:
            errors.append(describe_error(self.nvml, "nvmlDeviceGetComputeRunningProcesses", exc))
        try:
            return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used), "device"
        except Exception as exc:
            errors.append(describe_error(self.nvml, "nvmlDeviceGetMemoryInfo", exc))
            return None, None

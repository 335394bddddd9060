"""What lm-eval hands the model besides its ``model_args``, read the way lm-eval means it.

lm-eval 0.4.13 passes ``batch_size``, ``max_batch_size`` and ``device`` as keyword arguments and
fills in its own defaults: ``device`` is ``cuda:0`` whenever ``--device`` is not given, even on
a machine without a GPU. Telling a default from a choice the user made decides whether to fall
back quietly or to refuse, so these readings live together (the batch size is ``batching``'s).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medmoe_lm_eval.devices import DeviceError, cuda_available, resolve_device
from medmoe_lm_eval.harness.config import ConfigError

log = logging.getLogger(__name__)

#: what lm-eval's CLI passes as ``device`` when ``--device`` is not given (its config default)
LM_EVAL_DEFAULT_DEVICE = "cuda:0"


def as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def argv_value(argv: Sequence[str], *flags: str) -> str | None:
    """The value of the first of ``flags`` on an ``lm_eval`` command line (``--flag v`` or ``--flag=v``)."""
    for i, arg in enumerate(argv):
        if arg in flags and i + 1 < len(argv):
            return argv[i + 1]
        for flag in flags:
            if arg.startswith(f"{flag}="):
                return arg.split("=", 1)[1]
    return None


def output_dir_from_argv(argv: Sequence[str]) -> Path | None:
    """``--output_path`` of an ``lm_eval`` command line, so logs land beside its results."""
    value = argv_value(argv, "--output_path", "-o")
    if value is None:
        return None
    path = Path(value)
    return path.parent if path.suffix == ".json" else path


def requested_device(device: str | None, argv: Sequence[str]) -> str | None:
    """The device the user asked for, checked before any model loads.

    lm-eval's CLI passes ``cuda:0`` whenever ``--device`` is not given. On a machine without a
    GPU that default falls back to the CPU with one warning, as ``--model hf`` does (``HFLM``
    accepts ``cuda:N`` only for GPUs it sees); a device the user named (``--device cuda`` on the
    command line, or any other CUDA device) must exist, or this is a one-line error.
    """
    if device in (None, "", "auto"):
        return device
    assert device is not None
    if device == LM_EVAL_DEFAULT_DEVICE and argv_value(argv, "--device") is None and not cuda_available():
        log.warning("no CUDA device is visible, so lm-eval's default device %s falls back to the CPU; pass --device cpu to say so", device)
        return "cpu"
    try:
        return resolve_device(device)
    except DeviceError as exc:
        problem = str(exc).partition("; fix: ")[0]
        raise ConfigError("--device", "device", problem, "pass --device cpu, or leave --device out to use a GPU when there is one") from None

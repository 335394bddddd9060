"""The model's arguments, validated once into a frozen :class:`ModelOptions`.

``--model_args`` (``adapter=...,probe=0``) and what lm-eval 0.4.13 adds as keyword arguments
(``batch_size``, ``max_batch_size``, ``device``) arrive in ``MedMoELM(**kwargs)``; they are read
here, the way lm-eval means them, and nowhere else. lm-eval fills in its own defaults: ``device``
is ``cuda:0`` whenever ``--device`` is not given, even on a machine without a GPU. Telling a
default from a choice the user made decides whether to fall back quietly or to refuse, so these
readings live together (what a batch means per backend is ``batching``'s).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medmoe_lm_eval.devices import DeviceError, cuda_available, resolve_device
from medmoe_lm_eval.harness import batching
from medmoe_lm_eval.harness.config import ConfigError
from medmoe_lm_eval.harness.probe import parse_prompts

log = logging.getLogger(__name__)

#: every keyword ``MedMoELM`` accepts: ``--model_args`` keys plus lm-eval's batch and device
MODEL_ARGS = ("adapter", "device", "batch_size", "max_batch_size", "log_dir", "profile", "max_resident", "model", "probe", "concurrent")


@dataclass(frozen=True)
class ModelOptions:
    """The model's arguments after validation; None means "the adapter's own setting"."""

    adapter: str  #: path to an adapter YAML or a bundled adapter's name
    device: str | None  #: resolved device (lm-eval's unasked ``cuda:0`` on a CPU host becomes ``cpu``)
    batch: batching.BatchSetting | None  #: the command line's batch; None keeps each expert's
    log_dir: str | None  #: explicit ``log_dir=``
    output_path: str | None  #: lm-eval's ``--output_path`` (see :func:`command_line`)
    profile: bool | None
    max_resident: int | None  #: experts loaded at once; None: the adapter's ``memory.max_resident``
    model: str | None  #: the run's name (``model=``), which names the results folder
    probe: int | None  #: serving-probe prompts per task; None: the adapter's ``profile.probe_prompts``
    concurrent: bool  #: experts on different devices or servers serve at once

    @classmethod
    def parse(cls, kwargs: Mapping[str, Any], argv: Sequence[str] | None = None) -> ModelOptions:
        """Validate ``kwargs`` (one-line :class:`ConfigError` naming the argument and the fix)."""
        if kwargs.get("adapter") is None:
            raise ConfigError("--model_args", "adapter", "no adapter given", "pass adapter=<path to YAML or bundled name>")
        unknown = sorted(set(kwargs) - set(MODEL_ARGS))
        if unknown:
            raise ConfigError("--model_args", unknown[0], "unknown model argument", f"use only {', '.join(MODEL_ARGS)}")
        argv = command_line() if argv is None else argv
        profile, probe = kwargs.get("profile"), kwargs.get("probe")
        return cls(
            adapter=str(kwargs["adapter"]),
            device=requested_device(kwargs.get("device"), argv),
            batch=batching.from_cli(kwargs.get("batch_size"), kwargs.get("max_batch_size")),
            log_dir=str(kwargs["log_dir"]) if kwargs.get("log_dir") else None,
            output_path=argv_value(argv, "--output_path", "-o"),
            profile=None if profile is None else as_bool(profile),
            max_resident=_max_resident(kwargs.get("max_resident")),
            model=str(kwargs["model"]) if kwargs.get("model") else None,
            probe=None if probe in (None, "") else parse_prompts(probe),
            concurrent=as_bool(kwargs.get("concurrent", True)),
        )


def command_line() -> list[str]:
    """The ``lm_eval`` (or ``medmoe eval``) command line of this process.

    The one place the harness reads ``sys.argv``, and why it must: lm-eval 0.4.13 hands the model
    only ``model_args`` plus ``batch_size``, ``max_batch_size`` and ``device``
    (``LM.create_from_arg_obj``). ``--output_path``, beside which the routing log and profile
    belong, never reaches it, and an unasked ``--device`` looks the same as ``--device cuda:0``.
    """
    return list(sys.argv)


def _max_resident(value: Any) -> int | None:
    """``max_resident=N`` (N >= 1); 0 or absent leaves the adapter's ``memory.max_resident``."""
    if value in (None, "", 0):
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError("--model_args", "max_resident", f"'{value}' is not a whole number >= 0", "pass max_resident=<experts loaded at once>")
    return number or None


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

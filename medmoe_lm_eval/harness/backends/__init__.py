"""Expert backends, registered by name and imported only when an adapter uses them.

Like lm-eval's model registry, each entry is a ``module:Class`` string, so listing or
validating adapters never imports torch or llama.cpp; a missing optional dependency becomes an
install hint naming the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

from medmoe_lm_eval.harness.backends.base import Backend, BackendError
from medmoe_lm_eval.harness.batching import BatchSetting

BACKENDS: dict[str, tuple[str, str, str]] = {
    # name: (target, module that must import, extra that provides it)
    "hf": ("medmoe_lm_eval.harness.backends.hf:HFBackend", "transformers", "medmoe-lm-eval"),
    "gguf": ("medmoe_lm_eval.harness.backends.gguf:GGUFBackend", "llama_cpp", "medmoe-lm-eval[gguf]"),
    "remote": ("medmoe_lm_eval.harness.backends.remote:RemoteBackend", "urllib3", "medmoe-lm-eval"),
}


def backend_class(name: str) -> type[Backend]:
    """The class for ``backend: <name>``, with an install hint if its library is missing."""
    try:
        target, needs, extra = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend '{name}'; use one of {sorted(BACKENDS)}") from None
    try:
        importlib.import_module(needs)
    except ImportError:
        raise BackendError(f"backend '{name}' needs the '{needs}' package: pip install '{extra}'") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(spec: Any, device: str | None = None, batch: BatchSetting | None = None) -> Backend:
    """A backend for ``spec``; ``batch`` is the command line's batch size (``None``: the adapter's)."""
    return backend_class(spec.backend)(spec, device=device, batch=batch)


__all__ = ["BACKENDS", "Backend", "BackendError", "backend_class", "make_backend"]

"""Make ``lm_eval --model medmoe`` resolve without slowing every Python start.

lm-eval 0.4.13 has no plugin discovery for models: ``get_model`` reads its registry, which
``lm_eval.models`` fills from a fixed mapping. Registering ``medmoe`` *before* that module runs
would make the registry non-empty and hide every built-in model, and importing lm-eval from the
``.pth`` file would cost every interpreter start ~50 ms. So the ``.pth`` line only installs a
``sys.meta_path`` finder that wraps the loader of ``lm_eval.models`` and registers ``medmoe``
right after that module has executed (or at once, if it is already imported).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

from medmoe_lm_eval import MODEL_NAME, MODEL_TARGET

_WATCHED = "lm_eval.models"


def register() -> None:
    """Register ``medmoe`` as a lazy ``module:Class`` string next to lm-eval's built-ins."""
    import lm_eval.models  # noqa: F401  (fills the built-ins first)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def _register_after(module: ModuleType) -> None:
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


class _LoaderWrapper(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        with contextlib.suppress(Exception):  # never break lm-eval's own import
            _register_after(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of ``lm_eval.models`` once."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _LoaderWrapper(spec.loader)
                return spec
        return None


def install() -> None:
    """Entry point of the ``.pth`` line: cheap, silent, idempotent."""
    try:
        if _WATCHED in sys.modules:
            register()
            return
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
    except Exception:  # a broken plugin must never break the interpreter
        pass

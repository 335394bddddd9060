"""Building a ``llama_cpp.Llama`` that runs on every CPU llama.cpp compiles for.

llama.cpp repacks quantized weights into "extra buffer types" for faster kernels; on CPUs with
Intel AMX (Sapphire Rapids and newer) the AMX kernel of llama-cpp-python 0.3.36 crashes the
process (SIGSEGV in ``ggml_backend_amx_mul_mat``) on q8_0 and q4_0 models. A crash cannot be
caught and costs the whole evaluation, while the repacking only buys speed, so the backend turns
extra buffer types off. ``llama_cpp.Llama`` exposes no argument for this (the C struct has
``use_extra_bufts``), hence the narrow patch of the default parameters while one model loads.
The same patch sets the context fields the batch scorer needs (several sequences on one KV cache).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.Lock()


@contextmanager
def without_extra_buffers(**context: Any) -> Iterator[None]:
    """Within the block, models built by ``llama_cpp.Llama`` use no extra buffer types, and its
    contexts take the ``llama_context_params`` fields in ``context`` (``n_seq_max``,
    ``kv_unified``, ``n_outputs_max``: ``Llama`` has no argument for them either)."""
    import llama_cpp.llama_cpp as low

    with _LOCK:  # the default-params functions are module state: one model builds at a time
        model_default, context_default = low.llama_model_default_params, low.llama_context_default_params

        def model_params() -> Any:
            p = model_default()
            if hasattr(p, "use_extra_bufts"):
                p.use_extra_bufts = False
            return p

        def context_params() -> Any:
            p = context_default()
            known = {name for name, *_ in type(p)._fields_}  # an older llama.cpp lacks some: it keeps its defaults
            for field, value in context.items():
                if field in known:
                    setattr(p, field, value)
            return p

        low.llama_model_default_params, low.llama_context_default_params = model_params, context_params
        try:
            yield
        finally:
            low.llama_model_default_params, low.llama_context_default_params = model_default, context_default

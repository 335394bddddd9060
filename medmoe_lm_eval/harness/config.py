"""The adapter schema: one YAML file describes one candidate, validated before any model loads.

A candidate is a list of experts (each a model behind a backend) plus, for a mixture, a router
and an optional shared expert. A plain model is ``kind: single`` with one expert. Every error is
one line that names the file, the field and the fix (``ConfigError``), so a user who edits a
config by hand sees what to change without reading a stack trace.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from medmoe_lm_eval.harness import bounded_yaml
from medmoe_lm_eval.paths import bundled_adapters_dir
from medmoe_lm_eval.real_models import PKG_PREFIX, ModelFileError, resolve_ref


class ConfigError(ValueError):
    """A bad adapter config: ``<file>: <field>: <problem>; fix: <what to do>``."""

    def __init__(self, file: str | Path, field: str, problem: str, fix: str) -> None:
        self.file, self.field, self.problem, self.fix = str(file), field, problem, fix
        super().__init__(f"{file}: {field}: {problem}; fix: {fix}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ExpertBase(_Strict):
    """Fields every backend shares."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    domain: str = "general"
    model: str = Field(min_length=1, description="local path (relative to the adapter file), pkg:<distribution>/<file>, or hub id")
    revision: str | None = None
    device: str = Field("auto", description="'auto' = cuda when available, else cpu")
    batch_size: Annotated[int, Field(gt=0)] | Literal["auto"] = 1
    max_length: int | None = Field(None, gt=0, description="context window; longer inputs are left-truncated")
    trust_remote_code: bool = False


class HFExpert(_ExpertBase):
    """A transformers model: full precision, or an AWQ/GPTQ checkpoint (read from its config)."""

    backend: Literal["hf"] = "hf"
    dtype: str = "auto"
    tokenizer: str | None = None
    add_bos_token: bool | None = None


class GGUFExpert(_ExpertBase):
    """A ``.gguf`` file run in-process by llama-cpp-python."""

    backend: Literal["gguf"]
    filename: str | None = Field(None, description="with a hub repo id in 'model': the .gguf file to fetch from it")
    n_ctx: int = Field(2048, gt=0)
    n_threads: int | None = Field(None, gt=0)
    n_gpu_layers: int = 0
    n_batch: int | None = Field(None, gt=0, description="llama.cpp tokens per decode; default min(512, n_ctx)")


class RemoteExpert(_ExpertBase):
    """An OpenAI-compatible ``/v1/completions`` server (vLLM, llama.cpp server, TGI)."""

    backend: Literal["remote"]
    base_url: str = Field(pattern=r"^https?://")
    api_key_env: str | None = None
    concurrency: int = Field(4, gt=0)
    timeout_s: float = Field(60.0, gt=0, description="per attempt")
    max_retries: int = Field(3, ge=0)
    deadline_s: float | None = Field(None, gt=0, description="one request with all its retries; default (max_retries + 1) x timeout_s + 60")
    tokenizer: str | None = None


def _backend_of(value: Any) -> str:
    """The discriminator; an expert without ``backend`` is a transformers model."""
    return value.get("backend", "hf") if isinstance(value, dict) else getattr(value, "backend", "hf")


ExpertConfig = Annotated[
    Annotated[HFExpert, Tag("hf")] | Annotated[GGUFExpert, Tag("gguf")] | Annotated[RemoteExpert, Tag("remote")],
    Discriminator(_backend_of),
]


class RouterConfig(_Strict):
    """How a query picks experts: ``p(expert | query)``, then top-k (Mixtral-style renormalised)."""

    type: Literal["classifier", "keywords", "oracle", "fixed", "uniform"]
    path: str | None = Field(None, description="trained router file (classifier)")
    top_k: int = Field(1, ge=1)
    min_weight: float = Field(0.0, ge=0.0, lt=1.0)
    keywords: dict[str, list[str]] | None = None
    weights: dict[str, float] | None = None
    task_domains: dict[str, str] | None = Field(None, description="oracle: task name (or prefix) -> domain, for tasks outside benchmarks.task_table")
    threshold: float = Field(0.0, ge=0.0, le=1.0, description="top domain probability under this: no guess, the fallback answers")
    fallback: str | None = Field(None, description="expert that answers uncertain queries; default the shared expert")

    @model_validator(mode="after")
    def _kind_fields(self) -> RouterConfig:
        if self.type == "classifier" and not self.path:
            raise ValueError("type 'classifier' needs 'path'; fix: add path: <router file from `medmoe train-router`>")
        if self.type == "keywords" and not self.keywords:
            raise ValueError("type 'keywords' needs 'keywords'; fix: add keywords: {domain: [word, ...]}")
        if self.type == "fixed" and not self.weights:
            raise ValueError("type 'fixed' needs 'weights'; fix: add weights: {expert name: weight}")
        if self.weights is not None and any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0; fix: use non-negative weights")
        return self


class SharedExpertConfig(_Strict):
    """An expert mixed into every request with a fixed weight (DeepSeekMoE's shared expert)."""

    name: str
    weight: float = Field(gt=0.0, lt=1.0)


class MemoryConfig(_Strict):
    max_resident: int | None = Field(None, ge=1, description="experts loaded at once; default all")


class ProfileConfig(_Strict):
    enabled: bool = True
    interval_ms: float = Field(100.0, ge=5.0, le=5000.0)
    idle_s: float = Field(default=1.0, ge=0.0, le=60.0)  #: idle draw measured per device before the run (0: none)
    probe_prompts: int = Field(default=6, ge=0, le=1000)  #: single-stream prompts per task after one warm-up (0: off)


class AdapterConfig(_Strict):
    """One candidate. ``source``/``sha256`` are filled in by :func:`load_adapter`."""

    name: str = Field(min_length=1)
    description: str = ""
    kind: Literal["single", "moe"]
    experts: list[ExpertConfig] = Field(min_length=1)
    router: RouterConfig | None = None
    shared_expert: SharedExpertConfig | None = None
    memory: MemoryConfig = MemoryConfig()
    profile: ProfileConfig = ProfileConfig()
    parent: str | None = Field(None, min_length=1, description="candidate this one is a quantized copy of (fidelity pairs them)")
    parent_model: str | None = Field(None, description="the parent's model (path or hub id), as `medmoe quantize` read it")
    source: str | None = None
    sha256: str | None = None

    @field_validator("experts")
    @classmethod
    def _unique_names(cls, experts: list[Any]) -> list[Any]:
        names = [e.name for e in experts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate expert names {dupes}; fix: give every expert a unique 'name'")
        return experts

    @model_validator(mode="after")
    def _consistent(self) -> AdapterConfig:
        if self.kind == "single":
            if len(self.experts) != 1:
                raise ValueError("kind 'single' takes exactly one expert; fix: keep one expert or use kind: moe with a router")
            if self.router is not None or self.shared_expert is not None:
                raise ValueError("kind 'single' takes no router or shared_expert; fix: remove them or use kind: moe")
        if self.kind == "moe" and self.router is None:
            raise ValueError("kind 'moe' needs a 'router'; fix: add router: {type: classifier|keywords|oracle|fixed|uniform, ...} or use kind: single")
        if self.parent == self.name:
            raise ValueError(f"parent '{self.parent}' is this candidate itself; fix: name the full-precision candidate it was made from")
        return self

    def expert(self, name: str) -> Any:
        return next(e for e in self.experts if e.name == name)

    @property
    def routed_experts(self) -> list[Any]:
        """Experts the router chooses among (all but the shared one)."""
        shared = self.shared_expert.name if self.shared_expert else None
        return [e for e in self.experts if e.name != shared]


# ---------------------------------------------------------------------------------------------
# Loading: YAML -> AdapterConfig, with one-line errors and paths resolved against the file.

_FIXES = {
    "kind": "use 'single' (one expert, no router) or 'moe'",
    "backend": "use one of: hf, gguf, remote",
    "top_k": "use an integer >= 1",
    "min_weight": "use a number in [0, 1)",
    "weight": "use a number strictly between 0 and 1",
    "batch_size": "use a positive integer or 'auto'",
    "max_length": "use a positive integer or leave it out",
    "max_resident": "use an integer >= 1 or leave it out",
    "name": "use letters, digits, '_', '-' or '.'",
    "base_url": "use an http(s):// URL such as http://127.0.0.1:8000",
    "experts": "give a list of experts, each with a unique 'name'",
    "n_ctx": "use a positive integer (tokens)",
    "n_threads": "use a positive integer or leave it out",
    "concurrency": "use a positive integer",
    "timeout_s": "use a positive number of seconds",
    "max_retries": "use an integer >= 0",
    "parent": "name the full-precision candidate this one is a copy of, or leave it out",
    "deadline_s": "use a positive number of seconds or leave it out",
    "n_batch": "use a positive integer (tokens) or leave it out",
}


def _field_path(err: Mapping[str, Any]) -> list[Any]:
    """The error location without pydantic's union-member tags (``constrained-int``, ``hf``...)."""
    loc = [p for p in err.get("loc", ()) if isinstance(p, int) or str(p).isidentifier()]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("backend")
    return [p for i, p in enumerate(loc) if not (p in ("hf", "gguf", "remote") and i and isinstance(loc[i - 1], int))]


def _loc(err: Mapping[str, Any], data: Any) -> str:
    """Render a pydantic error location with expert names instead of list indices."""
    parts: list[str] = []
    node = data
    for item in _field_path(err):
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts.append(f"[{name or item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _from_validation_error(file: str | Path, exc: ValidationError, data: Any) -> ConfigError:
    err = exc.errors()[0]
    field = _loc(err, data)
    path = _field_path(err)
    last = str(path[-1]) if path else ""
    msg = err["msg"].removeprefix("Value error, ")
    if "; fix: " in msg:
        problem, fix = msg.split("; fix: ", 1)
        return ConfigError(file, field, problem, fix)
    if err["type"] == "extra_forbidden":
        return ConfigError(file, field, "unknown field", "remove it or check its spelling against the schema in config.py")
    if err["type"] == "missing":
        return ConfigError(file, field, "required field is missing", f"add '{last}'")
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return ConfigError(file, field, msg, _FIXES["backend"])
    return ConfigError(file, field, msg, _FIXES.get(last, "see the adapter schema in medmoe_lm_eval/harness/config.py"))


def resolve_adapter_path(ref: str | Path) -> Path:
    """A path to a YAML file, or the name of a bundled adapter (``model_adapters/<name>.yaml``)."""
    path = Path(os.path.expanduser(str(ref)))
    if path.is_file():
        return path
    for candidate in (bundled_adapters_dir() / f"{ref}.yaml", bundled_adapters_dir() / str(ref)):
        if candidate.is_file():
            return candidate
    raise ConfigError(ref, "adapter", "no such file or bundled adapter", "pass a path to a YAML file or a name listed by `medmoe eval --list-adapters`")


def _is_local_ref(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.endswith((".gguf", ".joblib"))


def _resolve_local(base: Path, value: str) -> str | None:
    """Absolute path if ``value`` names a local file or folder (relative to the adapter) or a ``pkg:`` file, else None."""
    candidate = resolve_ref(value) if value.startswith(PKG_PREFIX) else Path(os.path.expanduser(value))
    if not candidate.is_absolute():
        candidate = base / candidate
    return str(candidate.resolve()) if candidate.exists() else None


def _resolve_paths(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    base = file.parent
    for i, expert in enumerate(data.get("experts") or []):
        if not isinstance(expert, dict) or not isinstance(expert.get("model"), str):
            continue
        where = f"experts[{expert.get('name', i)}].model"
        try:
            local = _resolve_local(base, expert["model"])
        except ModelFileError as exc:
            raise ConfigError(file, where, f"{exc.what}: {exc.problem}", exc.fix) from None
        if local is not None:
            expert["model"] = local
        elif _is_local_ref(expert["model"]) or (expert.get("backend") == "gguf" and not expert.get("filename")):
            raise ConfigError(
                file,
                where,
                f"model file '{expert['model']}' does not exist",
                "fix the path (relative paths are read from the adapter's folder) or build the model first",
            )
    router = data.get("router")
    if isinstance(router, dict) and isinstance(router.get("path"), str):
        local = _resolve_local(base, router["path"])
        if local is None:
            raise ConfigError(
                file, "router.path", f"router file '{router['path']}' does not exist", "train one with `medmoe train-router --out <file>` or fix the path"
            )
        router["path"] = local
    return data


def _check_cross_refs(file: Path, cfg: AdapterConfig) -> None:
    names = {e.name for e in cfg.experts}
    if cfg.shared_expert and cfg.shared_expert.name not in names:
        raise ConfigError(
            file, "shared_expert.name", f"'{cfg.shared_expert.name}' is not one of the experts {sorted(names)}", "name an expert listed under 'experts'"
        )
    router = cfg.router
    if router is None:
        return
    routed = cfg.routed_experts
    if not routed:
        raise ConfigError(file, "experts", "every expert is the shared expert; nothing is left to route to", "add routed experts")
    if router.type not in ("fixed", "uniform") and router.top_k > len(routed):
        raise ConfigError(file, "router.top_k", f"top_k {router.top_k} exceeds the {len(routed)} routed expert(s)", f"use top_k <= {len(routed)}")
    if router.type in ("classifier", "keywords", "oracle"):
        domains = [e.domain for e in routed]
        dupes = sorted({d for d in domains if domains.count(d) > 1})
        if dupes:
            raise ConfigError(
                file,
                "experts.domain",
                f"routed experts share domains {dupes}, so a domain decision is ambiguous",
                "give each routed expert its own domain, or use router type 'fixed'/'uniform' for an ensemble",
            )
    _check_fallback(file, cfg)
    if router.weights:
        unknown = sorted(set(router.weights) - {e.name for e in routed})
        if unknown:
            raise ConfigError(file, "router.weights", f"unknown expert(s) {unknown}", f"use names from {sorted(e.name for e in routed)}")
        if sum(router.weights.values()) <= 0:
            raise ConfigError(file, "router.weights", "weights sum to 0", "give at least one expert a positive weight")
    if router.keywords:
        unknown = sorted(set(router.keywords) - {e.domain for e in routed})
        if unknown:
            raise ConfigError(file, "router.keywords", f"domains {unknown} have no expert", f"use domains of the experts: {sorted({e.domain for e in routed})}")


def _check_fallback(file: Path, cfg: AdapterConfig) -> None:
    """An uncertainty threshold needs someone to answer instead: the fallback or the shared expert."""
    router = cfg.router
    assert router is not None
    names = sorted(e.name for e in cfg.experts)
    if router.fallback is not None and router.fallback not in names:
        raise ConfigError(file, "router.fallback", f"'{router.fallback}' is not one of the experts {names}", "name an expert listed under 'experts'")
    if router.threshold > 0 and router.type not in ("classifier", "keywords"):
        raise ConfigError(
            file,
            "router.threshold",
            f"router type '{router.type}' has no probabilities to judge",
            "use threshold with type classifier or keywords, or remove it",
        )
    if router.threshold > 0 and router.fallback is None and cfg.shared_expert is None:
        raise ConfigError(file, "router.threshold", "uncertain queries have no expert to go to", "add router.fallback: <expert name> or a shared_expert")


def parse_adapter(data: Any, file: str | Path = "<adapter>") -> AdapterConfig:
    """Validate an already-parsed mapping (paths must already be absolute or hub ids)."""
    if not isinstance(data, dict):
        raise ConfigError(file, "(top level)", "expected a mapping of fields", "start the file with 'name:', 'kind:' and 'experts:'")
    try:
        cfg = AdapterConfig.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(file, exc, data) from None
    _check_cross_refs(Path(str(file)), cfg)
    return cfg


def load_adapter(ref: str | Path) -> AdapterConfig:
    """Read, resolve and validate an adapter: a file path or a bundled adapter's name."""
    file = resolve_adapter_path(ref)
    raw = file.read_bytes()
    try:
        data = bounded_yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(file, "(file)", "not UTF-8 text", "save the file as UTF-8") from None
    except bounded_yaml.TooDeep as exc:
        fix = "an adapter is a few levels deep (name, kind, experts, router): remove the extra nesting"
        raise ConfigError(file, f"line {exc.mark.line + 1}", str(exc), fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        problem = str(getattr(exc, "problem", None) or exc).strip()
        raise ConfigError(file, where, f"YAML syntax error: {problem}", "fix the YAML syntax (indentation, colons, quotes)") from None
    if isinstance(data, dict):
        data = _resolve_paths(file, data)
        data.setdefault("source", str(file.resolve()))
        data["sha256"] = hashlib.sha256(raw).hexdigest()
    return parse_adapter(data, file)


def dump_adapter(cfg: AdapterConfig) -> dict[str, Any]:
    """The config as plain data (what goes into results), without unset defaults noise."""
    return cfg.model_dump(mode="json", exclude_none=True)

"""Adapter configs: valid ones load with paths resolved; malformed ones give one line naming file, field and fix."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from commands import eval_cmd

from medmoe_lm_eval.harness.config import ConfigError, load_adapter


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """A folder that looks like a model on disk (config checks need only that it exists)."""
    path = tmp_path / "models" / "bio"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture()
def router_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.json"
    path.write_bytes(b"not checked until the router loads")
    return path


def _expert(name: str, domain: str, model: str, **extra) -> dict:
    return {"name": name, "domain": domain, "backend": "hf", "model": model, **extra}


def good_moe(model_dir: Path, router_file: Path) -> dict:
    return {
        "name": "moe",
        "kind": "moe",
        "experts": [
            _expert("bio", "biomedical", str(model_dir)),
            _expert("law", "legal", str(model_dir)),
            _expert("gen", "general", str(model_dir)),
        ],
        "router": {"type": "classifier", "path": str(router_file), "top_k": 1},
        "shared_expert": {"name": "gen", "weight": 0.3},
    }


def write(tmp_path: Path, data, name: str = "adapter.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_valid_moe_resolves_relative_paths(tmp_path, model_dir, router_file):
    data = good_moe(model_dir, router_file)
    data["experts"][0]["model"] = "models/bio"  # relative to the adapter's folder
    data["router"]["path"] = "router.json"
    cfg = load_adapter(write(tmp_path, data))
    assert cfg.expert("bio").model == str(model_dir.resolve())
    assert cfg.router.path == str(router_file.resolve())
    assert [e.name for e in cfg.routed_experts] == ["bio", "law"]
    assert cfg.sha256 and cfg.source.endswith("adapter.yaml")


def test_hub_ids_are_kept_as_is(tmp_path):
    cfg = load_adapter(write(tmp_path, {"name": "m", "kind": "single", "experts": [_expert("m", "general", "BioMistral/BioMistral-7B")]}))
    assert cfg.experts[0].model == "BioMistral/BioMistral-7B"


def _mutate(fn):
    def apply(data: dict) -> dict:
        fn(data)
        return data

    return apply


MALFORMED = [
    # (id, mutation of a good moe config, expected field fragment)
    ("kind-unknown", _mutate(lambda d: d.update(kind="mixture")), "kind"),
    ("name-missing", _mutate(lambda d: d.pop("name")), "name"),
    ("experts-empty", _mutate(lambda d: d.update(experts=[])), "experts"),
    ("experts-not-list", _mutate(lambda d: d.update(experts="bio")), "experts"),
    ("backend-unknown", _mutate(lambda d: d["experts"][0].update(backend="onnx")), "experts[bio]"),
    ("batch-size-negative", _mutate(lambda d: d["experts"][0].update(batch_size=-2)), "batch_size"),
    ("batch-size-string", _mutate(lambda d: d["experts"][0].update(batch_size="large")), "batch_size"),
    ("max-length-zero", _mutate(lambda d: d["experts"][1].update(max_length=0)), "max_length"),
    ("trust-remote-code-string", _mutate(lambda d: d["experts"][0].update(trust_remote_code="maybe")), "trust_remote_code"),
    ("unknown-expert-field", _mutate(lambda d: d["experts"][0].update(temprature=0.1)), "temprature"),
    ("unknown-top-level-field", _mutate(lambda d: d.update(routr={})), "routr"),
    ("expert-name-bad-chars", _mutate(lambda d: d["experts"][0].update(name="bio expert/1")), "name"),
    ("duplicate-expert-names", _mutate(lambda d: d["experts"][1].update(name="bio")), "experts"),
    ("model-file-missing", _mutate(lambda d: d["experts"][0].update(model="./no/such/model")), "experts[bio].model"),
    ("gguf-file-missing", _mutate(lambda d: d["experts"][0].update(backend="gguf", model="missing.gguf")), "experts[bio].model"),
    ("top-k-negative", _mutate(lambda d: d["router"].update(top_k=-1)), "router.top_k"),
    ("top-k-too-large", _mutate(lambda d: d["router"].update(top_k=5)), "router.top_k"),
    ("router-type-unknown", _mutate(lambda d: d["router"].update(type="llm")), "router.type"),
    ("router-file-missing", _mutate(lambda d: d["router"].update(path="nowhere.json")), "router.path"),
    ("classifier-without-path", _mutate(lambda d: d["router"].pop("path")), "router"),
    ("min-weight-too-big", _mutate(lambda d: d["router"].update(min_weight=1.5)), "router.min_weight"),
    ("moe-without-router", _mutate(lambda d: d.pop("router")), "(top level)"),
    ("shared-not-in-experts", _mutate(lambda d: d["shared_expert"].update(name="ghost")), "shared_expert.name"),
    ("shared-weight-one", _mutate(lambda d: d["shared_expert"].update(weight=1.0)), "shared_expert.weight"),
    ("routed-domains-clash", _mutate(lambda d: d["experts"][1].update(domain="biomedical")), "experts.domain"),
    ("fixed-weight-unknown-expert", _mutate(lambda d: d.update(router={"type": "fixed", "weights": {"bio": 1, "ghost": 1}})), "router.weights"),
    ("fixed-without-weights", _mutate(lambda d: d.update(router={"type": "fixed"})), "router"),
    ("keywords-unknown-domain", _mutate(lambda d: d.update(router={"type": "keywords", "keywords": {"finance": ["stock"]}})), "router.keywords"),
    ("single-with-two-experts", _mutate(lambda d: (d.update(kind="single"), d.pop("router"), d.pop("shared_expert"))), "(top level)"),
    ("remote-bad-url", _mutate(lambda d: d["experts"][0].update(backend="remote", model="served", base_url="localhost:8000")), "base_url"),
]


@pytest.mark.parametrize("case_id,mutate,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_adapter_one_line_error(tmp_path, model_dir, router_file, case_id, mutate, field):
    path = write(tmp_path, mutate(good_moe(model_dir, router_file)))
    with pytest.raises(ConfigError) as err:
        load_adapter(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert field in err.value.field, (err.value.field, message)
    assert "fix:" in message


@pytest.mark.parametrize(
    "text,where",
    [("name: x\nkind: [single\n", "line"), ("name: x\n\tkind: single\n", "line"), ("- just\n- a list\n", "(top level)"), ("", "(top level)")],
    ids=["unclosed-bracket", "tab-indent", "not-a-mapping", "empty-file"],
)
def test_yaml_syntax_errors_name_the_line(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_adapter(path)
    assert err.value.field.startswith(where) and "\n" not in str(err.value)


def test_missing_adapter_and_non_utf8(tmp_path):
    with pytest.raises(ConfigError, match="no such file or bundled adapter"):
        load_adapter(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_adapter(bad)


def test_cli_bad_adapter_exits_2_with_one_line_and_loads_nothing(tmp_path, model_dir, router_file):
    data = good_moe(model_dir, router_file)
    data["router"]["top_k"] = -3
    path = write(tmp_path, data)
    out = tmp_path / "out"
    proc = subprocess.run(
        eval_cmd(path, out, "medmoe_medmcqa"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "router.top_k" in lines[-1] and str(path) in lines[-1], proc.stderr
    assert not out.exists()  # nothing written, nothing loaded


LAUGHS = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
HOSTILE_ADAPTERS = {
    # (text, field the one-line error names, what it says)
    "flow-nesting-5000": ("name: x\nkind: single\nexperts: " + "[" * 5000 + "]" * 5000 + "\n", "line 3", "nested deeper than 50 levels"),
    "mapping-nesting-5000": ("name: x\nkind: single\nexperts: " + "{a: " * 5000 + "b" + "}" * 5000 + "\n", "line 3", "nested deeper than 50 levels"),
    "python-tag": ("name: !!python/object/apply:os.system ['touch PWNED']\nkind: single\n", "line 1", "YAML syntax error"),
    "alias-bomb": (LAUGHS + "name: x\nkind: single\nexperts: *a8\n", "experts", ""),
}


@pytest.mark.parametrize(("text", "field", "problem"), HOSTILE_ADAPTERS.values(), ids=HOSTILE_ADAPTERS.keys())
def test_hostile_adapter_files_give_the_one_line_error(tmp_path, monkeypatch, text, field, problem):
    """Nesting too deep for PyYAML's recursive composer, python tags and alias bombs: each is one
    line naming the file, at once, and nothing the file names runs."""
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_adapter(path)
    message = str(err.value)
    assert time.monotonic() - start < 10
    assert "\n" not in message and message.startswith(f"{path}: {field}") and problem in message and "fix:" in message, message
    assert not (tmp_path / "PWNED").exists()

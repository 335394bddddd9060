"""The demo's build cache and lm-eval's request cache are keyed on everything that shapes the models.

A changed setting, an edit to any module on the build path, or changed bundled data gives a new
key, so neither a stale model nor a stale cached answer is reused (fast: nothing is built here).
"""

from __future__ import annotations

import dataclasses

import yaml

from medmoe_lm_eval.demo import builder
from medmoe_lm_eval.demo.builder import DemoSettings, build_modules, inputs_fingerprint, request_cache


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    return dataclasses.replace(value, hidden_size=value.hidden_size * 2)  # type: ignore[type-var]


def test_every_setting_changes_the_build_key():
    base = DemoSettings()
    keys = {base.key()}
    for field in dataclasses.fields(DemoSettings):
        keys.add(dataclasses.replace(base, **{field.name: _changed(getattr(base, field.name))}).key())
    assert len(keys) == 1 + len(dataclasses.fields(DemoSettings))


def test_the_build_path_is_found_through_imports():
    modules = set(build_modules())
    wanted = {
        "medmoe_lm_eval.testing.tiny",  # tokenizer and model training
        "medmoe_lm_eval.benchmarks.splits",  # which texts train them
        "medmoe_lm_eval.harness.routing.training",  # the router
        "medmoe_lm_eval.quantization.make",
        "medmoe_lm_eval.quantization.gptq",
        "medmoe_lm_eval.quantization.gguf_convert",
    }
    assert wanted <= modules
    assert "medmoe_lm_eval.demo.pipeline" not in modules  # evaluation settings never rebuild models


def test_an_edit_on_the_build_path_changes_the_key(tmp_path, monkeypatch):
    package = tmp_path / "medmoe_lm_eval_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "root.py").write_text("from medmoe_lm_eval_probe import leaf\n")
    (package / "leaf.py").write_text("STEPS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(builder, "_PROJECT", "medmoe_lm_eval_probe")
    assert build_modules(("medmoe_lm_eval_probe.root",)) == ["medmoe_lm_eval_probe.leaf", "medmoe_lm_eval_probe.root"]
    before = inputs_fingerprint(("medmoe_lm_eval_probe.root",))
    (package / "leaf.py").write_text("STEPS = 2\n")  # a module only imported, never a root
    assert inputs_fingerprint(("medmoe_lm_eval_probe.root",)) != before


def test_changed_bundled_data_changes_the_key(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    rows = tmp_path / "train" / "texts.jsonl"
    rows.write_text('{"text": "aspirin"}\n')
    monkeypatch.setattr("medmoe_lm_eval.paths.bundled_data_dir", lambda: tmp_path)
    before = inputs_fingerprint()
    rows.write_text('{"text": "ibuprof"}\n')  # same size, other content
    assert inputs_fingerprint() != before


def test_request_cache_follows_the_adapter_and_so_the_build(tmp_path):
    def adapter(settings: DemoSettings) -> object:
        path = tmp_path / settings.key() / "generalist.yaml"
        path.parent.mkdir()
        model = f"/cache/demo/{settings.key()}/models/generalist"
        path.write_text(yaml.safe_dump({"name": "generalist", "kind": "single", "experts": [{"name": "g", "model": model}]}))
        return path

    a, b = adapter(DemoSettings()), adapter(DemoSettings(train_steps=80))
    assert request_cache(tmp_path, a) != request_cache(tmp_path, b)
    assert request_cache(tmp_path, a) == request_cache(tmp_path, a)
    assert request_cache(tmp_path, a).startswith(str(tmp_path / "generalist-"))

"""The model's arguments are validated once (``harness.model_args.ModelOptions``), and the run's
folder rules are written once (``harness.run_folder``): what ``--model_args`` and lm-eval's CLI
hand the model, as lm-eval 0.4.13 types them, and the one-line errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from lm_eval.utils import simple_parse_args_string

from medmoe_lm_eval.harness.batching import BatchSetting
from medmoe_lm_eval.harness.config import ConfigError, load_adapter
from medmoe_lm_eval.harness.model_args import MODEL_ARGS, ModelOptions
from medmoe_lm_eval.harness.run_folder import log_dir, name_the_run, results_folder


def test_model_args_as_lm_eval_types_them_become_one_frozen_record():
    args = simple_parse_args_string("adapter=medmoe-seed,probe=0,profile=false,max_resident=2,concurrent=false,model=org/cand")
    argv = ["lm_eval", "--model", "medmoe", "--output_path", "out/run.json", "--batch_size", "8"]
    opts = ModelOptions.parse({**args, "batch_size": "8", "max_batch_size": 16, "device": "cpu"}, argv)
    assert opts == ModelOptions(
        adapter="medmoe-seed", device="cpu", batch=BatchSetting(8, 1, 16, "cli"), log_dir=None, output_path="out/run.json",
        profile=False, max_resident=2, model="org/cand", probe=0, concurrent=False,
    )  # fmt: skip
    with pytest.raises(AttributeError):
        opts.probe = 3  # type: ignore[misc]


def test_what_was_not_given_stays_the_adapters():
    opts = ModelOptions.parse({"adapter": "medmoe-seed", "batch_size": 1}, ["lm_eval"])  # lm-eval's default batch: the integer 1
    assert (opts.batch, opts.profile, opts.max_resident, opts.probe, opts.output_path, opts.concurrent) == (None, None, None, None, None, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--model_args: adapter: no adapter given; fix: pass adapter="),
        ({"adapter": "a", "pretrained": "gpt2"}, "--model_args: pretrained: unknown model argument; fix: use only adapter, device"),
        ({"adapter": "a", "max_resident": "two"}, "--model_args: max_resident: 'two' is not a whole number >= 0"),
        ({"adapter": "a", "probe": -1}, "--model_args: probe: -1 is negative"),
        ({"adapter": "a", "batch_size": "0"}, "--batch_size: batch_size: '0' is not a positive integer"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_the_argument(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ModelOptions.parse(kwargs, ["lm_eval"])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_every_accepted_argument_is_an_option():
    """``MODEL_ARGS`` is the one list: each key reaches a field (the batch pair becomes ``batch``)."""
    fields = set(ModelOptions.__dataclass_fields__) - {"output_path"}
    assert {"batch" if a in ("batch_size", "max_batch_size") else a for a in MODEL_ARGS} == fields


def test_a_json_output_path_means_its_folder_and_logs_go_to_the_runs_subfolder(monkeypatch):
    monkeypatch.delenv("MEDMOE_LOG_DIR", raising=False)
    assert results_folder("out/run.json") == Path("out") and results_folder("out") == Path("out") and results_folder("out.d/") == Path("out.d")
    assert log_dir(None, "org/cand", "out/run.json") == Path("out/org__cand")  # lm-eval's sanitised folder name
    assert log_dir(None, None, "out") == Path("out") and log_dir(None, "x", None) is None
    assert log_dir("mine", "x", "out") == Path("mine")


def test_an_adapter_only_run_is_named_after_its_candidate():
    cfg = load_adapter("medmoe-seed")
    args: dict = {"adapter": "medmoe-seed"}
    name_the_run(args, cfg)
    assert args["model"] == cfg.name
    named = {"adapter": "medmoe-seed", "model": "mine"}
    name_the_run(named)
    assert named["model"] == "mine"  # a name the user gave stays

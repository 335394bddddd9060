"""lm-eval's default device on a machine without a GPU: the CPU with one warning, as ``--model hf``.

lm-eval's CLI passes ``device="cuda:0"`` whenever ``--device`` is not given. ``HFLM`` falls back
to the CPU when it sees no GPU; ``medmoe`` does the same for that default, while a CUDA device the
user named is refused in one line before any model loads. These tests need a machine without a
GPU (the real condition, nothing faked) and skip on one with a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medmoe_lm_eval.devices import cuda_available
from medmoe_lm_eval.harness.config import ConfigError
from medmoe_lm_eval.harness.model_args import requested_device

pytestmark = pytest.mark.skipif(cuda_available(), reason="needs a machine without a visible GPU")

REPO = Path(__file__).resolve().parents[2]
WARNING = "falls back to the CPU"


def test_lm_eval_default_device_falls_back_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="medmoe_lm_eval"):
        assert requested_device("cuda:0", ["lm_eval", "--model", "medmoe"]) == "cpu"
    warnings = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(warnings) == 1 and "--device cpu" in warnings[0]


@pytest.mark.parametrize("argv", [["lm_eval"], ["lm_eval", "--device", "cuda:0"], ["medmoe", "eval", "--device=cuda:0"]])
def test_a_named_cuda_device_without_a_gpu_is_a_one_line_error(argv):
    device = "cuda" if argv == ["lm_eval"] else "cuda:0"
    with pytest.raises(ConfigError, match=r"^--device: device: device 'cuda(:0)?' asked for but no CUDA device is visible; fix: pass --device cpu") as err:
        requested_device(device, argv)
    assert "\n" not in str(err.value)


def test_cpu_and_auto_pass_through():
    assert requested_device("cpu", []) == "cpu" and requested_device(None, []) is None and requested_device("auto", []) == "auto"


def _adapter(tmp_path: Path, model: Path) -> Path:
    """One expert with ``device: auto`` (the default), so the command line's device decides."""
    path = tmp_path / "auto-device.yaml"
    path.write_text(yaml.safe_dump({"name": "auto-device", "kind": "single", "experts": [{"name": "m", "model": str(model)}]}))
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDMOE_DATA": "bundled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


@pytest.mark.slow
def test_plain_lm_eval_without_device_runs_on_the_cpu(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    lm_eval = Path(sys.executable).with_name("lm_eval")
    args = ["--model", "medmoe", "--model_args", f"adapter={_adapter(tmp_path, tiny_model_dir)}", "--tasks", "medmoe_medmcqa"]
    proc = _run([str(lm_eval), *args, "--include_path", "tasks", "--limit", "2", "--output_path", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count(WARNING) == 1
    [results] = out.rglob("results_*.json")
    assert json.loads(results.read_text())["config"]["medmoe_profile"]["device"] == "cpu"


def test_medmoe_eval_with_device_cuda_fails_in_one_line_before_loading(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    args = ["--model", "medmoe", "--model_args", f"adapter={_adapter(tmp_path, tiny_model_dir)}", "--tasks", "medmoe_medmcqa", "--device", "cuda"]
    proc = _run([sys.executable, "-m", "medmoe_lm_eval", "eval", *args, "--limit", "2", "--output_path", str(out)])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert "--device" in errors[0] and "no CUDA device is visible" in errors[0] and "Traceback" not in proc.stderr
    assert not list(out.rglob("*.json"))

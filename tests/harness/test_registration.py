"""``medmoe`` resolves from the plain lm-eval CLI (the ``.pth`` hook) and from ``medmoe eval``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from commands import eval_cmd

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MEDMOE_DATA": "bundled", **env}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=environment, cwd=REPO)


def test_pth_hook_registers_medmoe_without_hiding_builtins():
    code = "from lm_eval.api.registry import get_model; print(get_model('medmoe').__name__, get_model('hf').__name__, get_model('dummy').__name__)"
    proc = run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["MedMoELM", "HFLM", "DummyLM"]


def test_start_up_imports_no_lm_eval_or_torch():
    code = "import sys; print(sorted(m for m in ('lm_eval', 'torch', 'transformers') if m in sys.modules))"
    proc = run([sys.executable, "-c", code])
    assert proc.stdout.strip() == "[]", proc.stdout


def test_hook_registers_when_lm_eval_models_was_imported_first():
    code = (
        "import sys, lm_eval.models\n"
        "from lm_eval.api.registry import model_registry\n"
        "model_registry._objs.pop('medmoe', None)\n"
        "import medmoe_lm_eval._lmeval_hook as h; h.install()\n"
        "print('medmoe' in model_registry, 'hf' in model_registry)"
    )
    proc = run([sys.executable, "-c", code])
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def _adapter(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "tiny-single.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny-single", "kind": "single", "experts": [{"name": "m", "model": str(model), "device": "cpu"}]}))
    return path


def _results(folder: Path) -> dict:
    files = sorted(folder.rglob("results_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_plain_lm_eval_cli_runs_medmoe(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    lm_eval = Path(sys.executable).with_name("lm_eval")
    proc = run(
        [
            str(lm_eval),
            "--model",
            "medmoe",
            "--model_args",
            f"adapter={_adapter(tmp_path, tiny_model_dir)},model=tiny-single",
            "--tasks",
            "medmoe_medmcqa",
            "--include_path",
            "tasks",
            "--limit",
            "3",
            "--output_path",
            str(out),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _results(out / "tiny-single")
    assert data["config"]["medmoe"]["candidate"] == "tiny-single"
    assert data["config"]["medmoe_profile"]["total"]["requests"] == 12
    assert list((out / "tiny-single").glob("routing_*.jsonl")) and list((out / "tiny-single").glob("profile_*.json"))


@pytest.mark.slow
def test_medmoe_eval_wrapper_adds_tasks_and_names_the_folder(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    proc = run(eval_cmd(_adapter(tmp_path, tiny_model_dir), str(out), "medmoe_ppl_code", "--limit", "2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _results(out / "tiny-single")
    assert "medmoe_ppl_code" in data["results"] and data["config"]["model_args"]["model"] == "tiny-single"


def test_medmoe_eval_reports_unwritable_output_before_loading(tmp_path, tiny_model_dir):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    proc = run(eval_cmd(_adapter(tmp_path, tiny_model_dir), str(blocker / "sub"), "medmoe_ppl_code"))
    assert proc.returncode == 2
    assert "--output_path" in proc.stderr and "cannot write there" in proc.stderr


def _readme_command(prefix: str) -> list[str]:
    """The README's usage line that starts with ``prefix``, split as a shell would."""
    import shlex

    lines = [line.strip() for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()]
    (line,) = [line for line in lines if line.startswith(prefix)]
    return shlex.split(line.split(" #", 1)[0])


@pytest.mark.slow
def test_readme_plain_lm_eval_command_keeps_results_logs_and_profile_together(tmp_path, tiny_model_dir):
    """Exactly the README's command (its adapter and output folder swapped for a tiny model's and a
    temporary one, nothing added): results, routing log and profile share ``<out>/<candidate>/``."""
    argv = _readme_command("lm_eval --model medmoe ")
    model_args = argv.index("--model_args") + 1
    assert argv[model_args].startswith("adapter=") and "," not in argv[model_args]  # the adapter alone names nothing
    argv[model_args] = f"adapter={_adapter(tmp_path, tiny_model_dir)}"
    out = tmp_path / "results"
    argv[argv.index("--output_path") + 1] = f"{out}/"
    argv[0] = str(Path(sys.executable).with_name("lm_eval"))
    proc = run(argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["tiny-single"]
    folder = out / "tiny-single"
    data = _results(folder)
    medmoe = data["config"]["medmoe"]
    assert medmoe["candidate"] == "tiny-single"
    assert (folder / medmoe["routing"]["log_file"]).is_file() and (folder / medmoe["profile_file"]).is_file()
    assert sorted(p.name.split("_")[0] for p in folder.iterdir()) == ["profile", "results", "routing"]


def _interrupt_results_writes(monkeypatch) -> list[Path]:
    """``Path.write_text`` of a ``results_*.json`` writes half its text, then the run is interrupted."""
    original, hit = Path.write_text, []

    def half_then_interrupt(self: Path, data: str, *args, **kwargs):
        if self.name.startswith("results_"):
            hit.append(self)
            original(self, data[: len(data) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half_then_interrupt)
    return hit


@pytest.mark.slow
def test_medmoe_eval_interrupted_while_saving_leaves_no_half_results_file_injected(tmp_path, tiny_model_dir, monkeypatch):
    """The interruption bites lm-eval's own tracker (half a file stays) but not ``medmoe eval``'s."""
    from lm_eval.loggers import EvaluationTracker

    from medmoe_lm_eval.cli.eval import run_lm_eval

    monkeypatch.setenv("MEDMOE_DATA", "bundled")
    hit = _interrupt_results_writes(monkeypatch)
    plain = tmp_path / "plain"
    with pytest.raises(KeyboardInterrupt):
        EvaluationTracker(output_path=str(plain)).save_results_aggregated(results={"results": {}}, samples=None)
    (half,) = plain.rglob("results_*.json")  # what an interrupted plain lm-eval run leaves
    with pytest.raises(json.JSONDecodeError):
        json.loads(half.read_text())

    out = tmp_path / "out"
    argv = ["--model", "medmoe", "--model_args", f"adapter={_adapter(tmp_path, tiny_model_dir)}", "--tasks", "medmoe_ppl_code", "--limit", "2"]
    with pytest.raises(KeyboardInterrupt):
        run_lm_eval([*argv, "--output_path", str(out), "--log_samples"])
    assert len(hit) == 2  # the write really was interrupted inside the run
    assert not list(out.rglob("results_*.json")) and not list(out.rglob(".*.tmp"))

    monkeypatch.undo()  # the same run, uninterrupted: the file is published whole, samples too
    monkeypatch.setenv("MEDMOE_DATA", "bundled")
    run_lm_eval([*argv, "--output_path", str(out), "--log_samples"])
    data = _results(out / "tiny-single")
    assert "medmoe_ppl_code" in data["results"] and data["config"]["medmoe"]["candidate"] == "tiny-single"
    assert len(list((out / "tiny-single").glob("samples_medmoe_ppl_code_*.jsonl"))) == 1

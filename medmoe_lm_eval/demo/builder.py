"""Building the demo's tiny models, routers, quantized copies and adapters, cached by their inputs.

Everything the demo evaluates is built here from the bundled samples; a build is reused only when
every input that shapes it (settings, code, data) is unchanged, so nothing stale is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from medmoe_lm_eval import __version__
from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.testing.tiny import TinySpec

MODELS = ("generalist", *DOMAINS)


DEMO_MAX_GEN_TOKS = 64


QUANT_METHODS = {"gptq": "gptq", "awq": "awq", "gguf-f16": "gguf-f16", "gguf-q8_0": "gguf-q8_0", "gguf-q4_0": "gguf-q4_0"}


@dataclass(frozen=True)
class DemoSettings:
    """What the demo builds; any change gives a new cache folder (nothing stale is reused)."""

    spec: TinySpec = TinySpec(vocab_size=4096, hidden_size=128, num_layers=3, num_heads=4, intermediate_size=384, max_position_embeddings=1024)  # noqa: RUF009 (frozen: sharing it is safe)
    train_steps: int = 150
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    seed: int = 0
    shared_weight: float = 0.3

    def key(self) -> str:
        blob = json.dumps({"settings": asdict(self), "version": __version__, "inputs": inputs_fingerprint()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


#: where the code that shapes the built models starts: with every project module it imports,
#: found by reading the imports, it goes into the key, so an edit anywhere on that path rebuilds
BUILD_ROOTS = ("medmoe_lm_eval.demo.builder",)
_PROJECT = "medmoe_lm_eval"
#: libraries whose version changes what training, tokenizing or quantizing produces
BUILD_LIBRARIES = ("torch", "transformers", "tokenizers", "scikit-learn", "gptqmodel", "gguf", "llama_cpp_python")


def module_file(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ModuleNotFoundError(f"demo build input {name} has no source file")
    return Path(spec.origin)


def _project_imports(name: str) -> set[str]:
    """The ``medmoe_lm_eval`` modules ``name`` imports (at the top or inside functions)."""
    import ast
    import importlib.util

    found = set()
    for node in ast.walk(ast.parse(module_file(name).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == _PROJECT:
            package = importlib.util.find_spec(node.module)
            named = {f"{node.module}.{a.name}" for a in node.names}  # ``from pkg import module`` names modules
            modules = {m for m in named if importlib.util.find_spec(m)} if package and package.submodule_search_locations else set()
            found |= modules or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == _PROJECT}
    return found


def build_modules(roots: tuple[str, ...] = BUILD_ROOTS) -> list[str]:
    """``roots`` and every project module they reach through imports, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_project_imports(name) - seen)
    return sorted(seen)


def inputs_fingerprint(roots: tuple[str, ...] = BUILD_ROOTS) -> str:
    """What the built artifacts depend on besides the settings: the code that builds them, the
    library versions it calls, and the bundled data (by content, not size)."""
    from importlib.metadata import PackageNotFoundError, version

    from medmoe_lm_eval.paths import bundled_data_dir

    digest = hashlib.sha256()
    for name in build_modules(roots):
        digest.update(name.encode() + b"\0" + module_file(name).read_bytes())
    for library in BUILD_LIBRARIES:
        try:
            digest.update(f"{library}=={version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    root = bundled_data_dir()
    for path in sorted(root.rglob("*.jsonl")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def request_cache(folder: Path, adapter: Path) -> str:
    """lm-eval's ``--use_cache`` path for one candidate: keyed on its adapter's bytes, which name
    the built models' folder (and so the settings' and code's key), so answers cached for other
    models or settings are never reused."""
    return str(folder / f"{adapter.stem}-{hashlib.sha256(adapter.read_bytes()).hexdigest()[:12]}")


class BuildCache:
    """A folder of built artifacts, each reused only once it is marked complete.

    A build interrupted half-way leaves no mark, so the next run rebuilds it instead of
    evaluating a half-written model. Subclasses say how each artifact a candidate needs is made.
    """

    def __init__(self, root: Path, progress: Progress) -> None:
        self.root = root
        self.progress = progress

    def _done(self, path: Path) -> bool:
        return (path / ".complete").is_file() or (path.is_file() and path.with_name(path.name + ".complete").is_file())

    @staticmethod
    def _mark(path: Path) -> None:
        (path / ".complete" if path.is_dir() else path.with_name(path.name + ".complete")).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))

    def artifact(self, need: str) -> Path:
        """Build (once) the artifact ``need`` names; where it is."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called once every candidate is built (a builder may close its display lines)."""

    def build(self, candidate: Candidate) -> dict[str, Any]:
        for need in candidate.needs:
            self.artifact(need)
        return {"name": candidate.name, "description": candidate.description, **candidate.adapter(self)}


class DemoBuilder(BuildCache):
    """Builds (once) and finds the tiny demo's artifacts under ``<cache>/demo/<settings key>/``."""

    def __init__(self, settings: DemoSettings, root: Path, progress: Progress) -> None:
        super().__init__(root / "demo" / settings.key(), progress)
        self.settings = settings

    def _texts(self, name: str) -> list[str]:
        from medmoe_lm_eval.benchmarks.splits import domain_texts

        if name in DOMAINS:
            return domain_texts(name, "train")
        per_domain = [domain_texts(d, "train") for d in DOMAINS]
        n = min(map(len, per_domain))  # equal mix: the same number of texts from each domain
        return [texts[i] for i in range(n) for texts in per_domain]

    def tokenizer(self) -> Path:
        path = self.root / "tokenizer"
        if not self._done(path):
            from medmoe_lm_eval.testing.tiny import train_tokenizer

            task = self.progress.add_task("training the shared BPE tokenizer", total=1)
            shutil.rmtree(path, ignore_errors=True)
            texts = [t for d in DOMAINS for t in self._texts(d)]
            train_tokenizer(texts, path, vocab_size=self.settings.spec.vocab_size, model_max_length=self.settings.spec.max_position_embeddings)
            self._mark(path)
            self.progress.update(task, completed=1)
        return path

    def model(self, name: str) -> Path:
        path = self.root / "models" / name
        if self._done(path):
            return path
        from transformers import AutoTokenizer

        from medmoe_lm_eval.testing.tiny import build_model, train_lm

        s = self.settings
        tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer()))
        task = self.progress.add_task(f"training {name} ({s.train_steps} steps)", total=s.train_steps)
        model = build_model(tokenizer, s.spec)
        train_lm(
            model,
            tokenizer,
            self._texts(name),
            steps=s.train_steps,
            batch_size=s.batch_size,
            seq_len=s.seq_len,
            lr=s.lr,
            seed=s.seed,
            on_step=lambda step, loss: self.progress.update(task, completed=step + 1, description=f"training {name} · loss {loss:.2f}"),
        )
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
        self._mark(path)
        return path

    def router(self) -> Path:
        path = self.root / "router.json"
        if not self._done(path):
            from medmoe_lm_eval.harness.routing.training import bundled_examples, train_classifier

            task = self.progress.add_task("training the TF-IDF router", total=1)
            report = train_classifier(bundled_examples("train"), path, seed=self.settings.seed)
            path.with_name("router.report.json").write_text(json.dumps(report, indent=2))
            self._mark(path)
            self.progress.update(task, completed=1)
        return path

    def quantized(self, method: str) -> Path:
        folder = self.root / "quantized" / method
        if self._done(folder):
            return _gguf_file(folder) if method.startswith("gguf") else folder
        from medmoe_lm_eval.quantization.make import QuantizeJob, quantize

        source = self.model("generalist")
        task = self.progress.add_task(f"quantizing the generalist: {method}", total=1)
        shutil.rmtree(folder, ignore_errors=True)
        calibration = self.root / "calibration.jsonl"
        if not calibration.is_file():  # the generalist's own training mix
            calibration.write_text("".join(json.dumps({"text": t}) + "\n" for t in self._texts("generalist")), encoding="utf-8")
        quantize(QuantizeJob(model=source, method=QUANT_METHODS[method], out=folder, calibration=str(calibration), n_samples=64, calibration_length=256))
        self._mark(folder)
        self.progress.update(task, completed=1)
        return _gguf_file(folder) if method.startswith("gguf") else folder

    def artifact(self, need: str) -> Path:
        if need == "router":
            return self.router()
        if need.startswith("quant:"):
            return self.quantized(need.split(":", 1)[1])
        return self.model(need)


def _gguf_file(folder: Path) -> Path:
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .gguf file was written")
    return files[0]


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    needs: tuple[str, ...]  #: artifacts its builder makes first (tiny: model names, "router", "quant:<method>")
    adapter: Callable[[Any], dict[str, Any]] = field(repr=False, compare=False)  #: builder -> adapter fields

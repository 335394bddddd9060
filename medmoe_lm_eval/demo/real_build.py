"""Getting the real demo's candidates ready: the installed model files, SmolLM2's parent and copies, the router.

``real_models.fetch`` installs and checks the two model files (``medmoe models fetch``), and
``quantization.real_copies`` builds SmolLM2's float32 parent and its GGUF copies once into the
cache, keyed on the source file's sha256; this builder only reports their progress on the demo's
display and remembers the files it saw, so the report can name them with their licences.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rich.progress import Progress, TaskID

from medmoe_lm_eval.demo.builder import BuildCache
from medmoe_lm_eval.real_models import ModelFile


class RealBuilder(BuildCache):
    """Artifacts: ``smollm2``/``gemma`` (model files), ``parent`` and ``gguf-q8_0``, ``gguf-q4_0``,
    ``gptq`` (adapters of SmolLM2's parent and copies), ``router`` (the shipped router file)."""

    def __init__(self, root: Path, progress: Progress) -> None:
        super().__init__(root / "demo-real", progress)
        self.files: dict[str, ModelFile] = {}
        self._line: TaskID | None = None

    def _say(self, text: str) -> None:
        """The library's progress lines, one display line updated in place."""
        if self._line is None:
            self._line = self.progress.add_task(text, total=None)
        self.progress.update(self._line, description=text)

    def artifact(self, need: str) -> Path:
        if need in ("smollm2", "gemma"):
            return self.model_file(need).path
        if need == "router":
            return self.router()
        from medmoe_lm_eval.quantization.real_copies import copy_adapter, parent_adapter

        self.model_file("smollm2")  # its file first: a missing package stops the demo before any build
        return parent_adapter(self._say) if need == "parent" else copy_adapter(need, self._say)

    def model_file(self, need: str) -> ModelFile:
        from medmoe_lm_eval.real_models import fetch

        name = {"smollm2": "smollm2-135m-instruct", "gemma": "gemma-3-270m"}[need]
        if name not in self.files:
            self.files[name] = fetch([name], self._say)[0]
        return self.files[name]

    def router(self) -> Path:
        """The shipped default router, copied under its content hash: the adapters name the copy,
        so a retrained router changes their bytes (and so lm-eval's request cache key) too."""
        from medmoe_lm_eval.paths import bundled_adapters_dir

        data = (bundled_adapters_dir() / "routers" / "default_router.json").read_bytes()
        path = self.root / f"router-{hashlib.sha256(data).hexdigest()[:12]}.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path

    def finish(self) -> None:
        """Close the library's progress line with what was built."""
        if self._line is not None:
            self.progress.update(self._line, description="real models fetched and checked; SmolLM2's parent and copies ready", total=1, completed=1)

"""``medmoe eval``'s results are published whole, or not at all.

lm-eval's ``EvaluationTracker`` writes ``results_<date>.json`` (and the ``samples_*.jsonl``) in
place, so a run interrupted while writing leaves half a file that reads as a corrupt run. Here the
tracker writes exactly what lm-eval would, names and contents included, into a private staging
folder; each finished file is then copied next to its final name under a hidden temporary name,
flushed to disk and hard-linked into place (which also refuses to replace an existing file). The
run uses this tracker because lm-eval's ``run`` command looks ``EvaluationTracker`` up in
``lm_eval.loggers`` when it starts; :func:`atomic_results` puts it there for the run's duration.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lm_eval.loggers import EvaluationTracker

from medmoe_lm_eval.harness.run_folder import results_folder
from medmoe_lm_eval.jsonio import copy_exclusive


class AtomicEvaluationTracker(EvaluationTracker):
    """lm-eval's tracker, with every file it saves staged first and published whole."""

    def save_results_aggregated(self, results: dict, samples: dict | None = None) -> None:
        self._staged(lambda: super(AtomicEvaluationTracker, self).save_results_aggregated(results=results, samples=samples))

    def save_results_samples(self, task_name: str, samples: Any) -> None:
        self._staged(lambda: super(AtomicEvaluationTracker, self).save_results_samples(task_name=task_name, samples=samples))

    def _staged(self, save: Callable[[], None]) -> None:
        output: str | None = getattr(self, "output_path", None)
        if not output:
            save()
            return
        final = Path(output)
        destination = results_folder(final)
        with tempfile.TemporaryDirectory(prefix="medmoe-results-") as staging:
            self.output_path = str(Path(staging) / final.relative_to(destination))  # the same file name or folder, staged
            try:
                save()
            finally:
                self.output_path = str(final)
            for path in sorted(Path(staging).rglob("*")):
                if path.is_file():
                    copy_exclusive(path, destination / path.relative_to(staging))


@contextlib.contextmanager
def atomic_results() -> Iterator[None]:
    """lm-eval's ``run`` command builds :class:`AtomicEvaluationTracker` while this is open."""
    import lm_eval.loggers

    original = lm_eval.loggers.EvaluationTracker
    lm_eval.loggers.EvaluationTracker = AtomicEvaluationTracker
    try:
        yield
    finally:
        lm_eval.loggers.EvaluationTracker = original

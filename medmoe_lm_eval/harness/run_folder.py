"""Which folder a run's results, routing log and profile go to: the one lm-eval writes its results to.

lm-eval's CLI (``EvaluationTracker``) writes ``<output_path>/<name>/results_<date>.json``, where
``<name>`` is the first of the ``peft``/``delta``/``pretrained``/``model``/``path``/``engine`` keys
of ``--model_args`` (sanitised), or eight random letters when there is none. An adapter-only
command line (``--model_args adapter=...``) has none, so the candidate's name is written into that
very dict before the model is built: the tracker then names the folder after the candidate and the
model puts its logs in the same place. Both rules (the naming and "a ``.json`` output path means
its folder") are written here once, for the model, ``medmoe eval`` and its atomic tracker.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval import settings

if TYPE_CHECKING:
    from medmoe_lm_eval.harness.config import AdapterConfig


def results_folder(output_path: str | Path) -> Path:
    """The folder ``--output_path`` means: itself, or for a ``results.json`` file name its folder
    (lm-eval accepts both and writes into that folder either way)."""
    path = Path(output_path)
    return path.parent if path.suffix == ".json" else path


def name_the_run(model_args: MutableMapping[str, Any], cfg: AdapterConfig | None = None) -> None:
    """Add ``model=<candidate>`` when lm-eval would otherwise name the results folder at random.

    ``cfg`` is the adapter when the caller has already loaded it; else it is loaded only if needed.
    """
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    from medmoe_lm_eval.harness.config import load_adapter

    if model_args.get("adapter") is not None and GeneralConfigTracker._get_model_name(dict(model_args)) is None:
        model_args["model"] = (cfg or load_adapter(str(model_args["adapter"]))).name


def log_dir(explicit: str | None, model: str | None, output_path: str | Path | None) -> Path | None:
    """``log_dir=`` wins, then ``MEDMOE_LOG_DIR``, then lm-eval's own ``<output_path>/<model>/``."""
    if explicit:
        return Path(explicit)
    if from_env := settings.LOG_DIR.value():
        return Path(from_env)
    if output_path is None:
        return None
    from lm_eval.utils import sanitize_model_name

    out = results_folder(output_path)
    return out / sanitize_model_name(model) if model else out

"""Which folder a run's routing log and profile go to: the one lm-eval writes its results to.

lm-eval's CLI (``EvaluationTracker``) writes ``<output_path>/<name>/results_<date>.json``, where
``<name>`` is the first of the ``peft``/``delta``/``pretrained``/``model``/``path``/``engine`` keys
of ``--model_args`` (sanitised), or eight random letters when there is none. An adapter-only
command line (``--model_args adapter=...``) has none, so the candidate's name is written into that
very dict before the model is built: the tracker then names the folder after the candidate and the
model puts its logs in the same place.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from medmoe_lm_eval import settings
from medmoe_lm_eval.harness.model_args import output_dir_from_argv


def name_the_run(model_args: MutableMapping[str, Any]) -> None:
    """Add ``model=<candidate>`` when lm-eval would otherwise name the results folder at random."""
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    from medmoe_lm_eval.harness.config import load_adapter

    if model_args.get("adapter") is not None and GeneralConfigTracker._get_model_name(dict(model_args)) is None:
        model_args["model"] = load_adapter(str(model_args["adapter"])).name


def log_dir(explicit: str | None, model: str | None, argv: Sequence[str]) -> Path | None:
    """``log_dir=`` wins, then ``MEDMOE_LOG_DIR``, then lm-eval's own ``<output_path>/<model>/``."""
    if explicit:
        return Path(explicit)
    if from_env := settings.LOG_DIR.value():
        return Path(from_env)
    out = output_dir_from_argv(argv)
    if out is None:
        return None
    from lm_eval.utils import sanitize_model_name

    return out / sanitize_model_name(model) if model else out

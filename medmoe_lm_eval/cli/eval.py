"""``medmoe eval``: lm-eval's own ``run`` command, with ``medmoe`` registered and our tasks included.

Everything after ``medmoe eval`` is lm-eval's command line. Before lm-eval starts, the wrapper
validates the adapter and the output folder (so a typo costs a second, not a model load), names
the results folder after the candidate, adds the project's ``tasks/`` to the include path, and
publishes each results file atomically (``cli.eval_tracker``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medmoe_lm_eval import MODEL_NAME, settings
from medmoe_lm_eval.benchmarks.sources import METADATA_KEY
from medmoe_lm_eval.harness.config import ConfigError, load_adapter
from medmoe_lm_eval.harness.run_folder import name_the_run, results_folder
from medmoe_lm_eval.paths import bundled_adapters_dir, tasks_dir

MIN_FREE_BYTES = 16 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list-adapters", action="store_true", help="list the bundled adapter configs and exit")
    parser.epilog = "All other arguments are lm-eval's (see `lm-eval run --help`), e.g. --model medmoe --model_args adapter=<yaml> --tasks medmoe"


def run(args: argparse.Namespace) -> int:
    if args.list_adapters:
        for path in sorted(bundled_adapters_dir().glob("*.yaml")):
            print(path.stem)
        return 0
    run_lm_eval(list(args.lm_eval_args))
    return 0


def check_output_dir(path: str | Path) -> None:
    """A results folder that cannot take a file is reported before any model loads."""
    folder = results_folder(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".medmoe-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            str(folder), "--output_path", f"cannot write there ({exc.strerror or exc})", "choose a writable folder or fix its permissions"
        ) from None
    if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
        raise ConfigError(str(folder), "--output_path", "less than 16 MiB free", "free some space or choose another folder")


def prepare(ns: argparse.Namespace) -> argparse.Namespace:
    """Add our tasks, validate the adapter and output folder, name the candidate's folder, and keep
    lm-eval's per-sample logs (``--log_samples``) whenever results are written."""
    ours = str(tasks_dir())
    extra = [p for p in (ns.include_path or "").split(os.pathsep) if p]
    ns.include_path = [*extra, ours] if extra else ours
    if ns.model == MODEL_NAME:
        model_args: dict[str, Any] = dict(ns.model_args or {})
        if "adapter" not in model_args:
            raise ConfigError("--model_args", "adapter", "no adapter given", "pass --model_args adapter=<path to YAML or bundled name>")
        name_the_run(model_args, load_adapter(str(model_args["adapter"])))
        ns.model_args = model_args
    if ns.output_path:
        check_output_dir(ns.output_path)
        ns.log_samples = True  # per-item records: the board's paired statistics need them
    data = settings.DATA.text()
    if ns.model != MODEL_NAME and data and METADATA_KEY not in (ns.metadata or {}):
        # ``medmoe`` records ``settings.DATA`` itself (as under plain ``lm_eval``); another model records
        # nothing, so the source goes into each task's config: the board badges the data source
        ns.metadata = {**(ns.metadata or {}), METADATA_KEY: data}
    return ns


def run_lm_eval(argv: list[str]) -> None:
    """Run lm-eval's ``run`` subcommand in this process with ``medmoe`` registered."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.cli.eval_tracker import atomic_results

    register()
    setup_logging()
    cli = HarnessCLI()
    ns = cli._parser.parse_args(["run", *argv])
    with atomic_results():  # results files appear whole or not at all
        cli.execute(prepare(ns))

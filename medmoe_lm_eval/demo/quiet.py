"""Where the demo's output goes: the report to the console, everything the libraries print to a log.

lm-eval, transformers, gptqmodel, torch and llama.cpp write warnings, banners and progress bars
through ``logging``, ``warnings``, ``print``, tqdm and C code; only the file descriptors catch them
all. So, unless ``--verbose``, descriptors 1 and 2 point at ``demo.log`` while the demo runs, and
the report is written to a duplicate of the original standard output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console

from medmoe_lm_eval.console import cli_console


@contextlib.contextmanager
def report_console(log_path: Path, verbose: bool) -> Iterator[Console]:
    """A console for the report; with ``verbose`` off, all other output goes to ``log_path``."""
    if verbose:
        yield cli_console()
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    report = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield cli_console(file=report)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log, *saved):
            os.close(fd)
        report.close()


class RequestStage(logging.Handler):
    """Hears lm-eval's ``Running <type> requests`` and hands the request type to ``on_stage``.

    That line is the evaluator's only sign of where a run is, so the demo's per-candidate
    progress shows it; the record still reaches lm-eval's own handlers (the log) unchanged.
    """

    def __init__(self, on_stage: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.on_stage = on_stage

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Running %s requests" and record.args:
            self.on_stage(str(record.args[0]))  # type: ignore[index]


@contextlib.contextmanager
def listening(on_stage: Callable[[str], None]) -> Iterator[None]:
    """Attach a :class:`RequestStage` to lm-eval's evaluator logger for the duration."""
    logger = logging.getLogger("lm_eval.evaluator")
    handler, level = RequestStage(on_stage), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

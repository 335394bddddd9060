"""The ``medmoe`` command: one entry point, one small module behind each subcommand.

Owns: argument parsing and terminal output of every subcommand (``eval``, ``ask``, ``quantize``,
``models``, ``train-router``/``eval-router``, ``leaderboard``/``rank``, ``compare``, ``plan``, ``profile``, ``fidelity``, ``routing``). May use: ``analysis``,
``store`` and everything below; ``demo`` sits above it and is reached by name only.

Subcommand modules are imported only when their command runs, so ``medmoe --help`` stays fast
and ``medmoe rank`` never imports torch. Known user errors (bad config, bad router file, a
backend that cannot load) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from medmoe_lm_eval import __version__

#: name -> (module, function adding arguments, function running the command, help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "demo": (
        "medmoe_lm_eval.demo.pipeline",
        "add_arguments",
        "run",
        "offline demo: real small models, their copies and mixtures, evaluated and ranked (--tiny: tiny stand-ins)",
    ),
    "eval": ("medmoe_lm_eval.cli.eval", "add_arguments", "run", "lm-eval's `run` with medmoe registered and the project's tasks included"),
    "ask": ("medmoe_lm_eval.cli.ask", "add_arguments", "run", "ask a candidate a question and watch the router work"),
    "quantize": ("medmoe_lm_eval.cli.quantize", "add_arguments", "run", "make an AWQ, GPTQ or GGUF copy of a model, or a float32 copy of a GGUF file"),
    "models": ("medmoe_lm_eval.cli.models", "add_arguments", "run", "install and locate the real pretrained models (SmolLM2, Gemma 3), with their licences"),
    "train-router": (
        "medmoe_lm_eval.cli.router_training",
        "add_train_arguments",
        "run_train",
        "train a domain router (TF-IDF + linear model, or a transformers classifier)",
    ),
    "eval-router": ("medmoe_lm_eval.cli.router_training", "add_eval_arguments", "run_eval", "accuracy, macro-F1, confusion matrix and speed of a router"),
    "leaderboard": (
        "medmoe_lm_eval.cli.board",
        "add_leaderboard_arguments",
        "run_leaderboard",
        "open the Streamlit leaderboard, or export it as HTML/Markdown",
    ),
    "rank": ("medmoe_lm_eval.cli.board", "add_rank_arguments", "run_rank", "rank candidates for a use case in the terminal"),
    "compare": ("medmoe_lm_eval.cli.compare", "add_arguments", "run", "compare two candidates task by task: paired intervals and tests"),
    "plan": ("medmoe_lm_eval.cli.plan", "add_arguments", "run", "items each task needs to detect a difference (paired and unpaired), against items available"),
    "profile": ("medmoe_lm_eval.cli.profile", "add_arguments", "run", "show the efficiency profile of a run"),
    "fidelity": (
        "medmoe_lm_eval.cli.fidelity",
        "add_arguments",
        "run",
        "quantized copies against their parents: agreement, flips, KL, recovery, non-inferiority verdicts",
    ),
    "routing": (
        "medmoe_lm_eval.cli.routing_scorecard",
        "add_arguments",
        "run",
        "router scorecard of a mixture: accuracy, regret vs the oracle, gap recovered, speed",
    ),
}


#: commands that print what a results folder holds: their plain output escapes control characters
#: (``console.escaped_output``; their tables go through ``console.cli_console``, which escapes too)
SHOWS_RESULTS = frozenset({"leaderboard", "rank", "compare", "profile", "fidelity", "routing"})


def _user_errors() -> tuple[type[BaseException], ...]:
    from medmoe_lm_eval.benchmarks.rows import DataError
    from medmoe_lm_eval.harness.backends.base import BackendError
    from medmoe_lm_eval.harness.config import ConfigError
    from medmoe_lm_eval.harness.routing.scorers import RouterError
    from medmoe_lm_eval.real_models import ModelFileError

    return (ConfigError, RouterError, BackendError, DataError, ModelFileError)


def _output_for(name: str) -> contextlib.AbstractContextManager[None]:
    if name not in SHOWS_RESULTS:
        return contextlib.nullcontext()
    from medmoe_lm_eval.console import escaped_output  # rich: not imported for `medmoe --help`

    return escaped_output()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medmoe", description="Evaluate medical, legal and code candidates and gated mixtures of experts with lm-eval.")
    parser.add_argument("--version", action="version", version=f"medmoe-lm-eval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, _, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    module, add, run, _ = COMMANDS[name]
    mod = importlib.import_module(module)
    return getattr(mod, add), getattr(mod, run)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv or ["--help"])
        return 2
    logging.getLogger("torchao").setLevel(logging.ERROR)  # optional-kernel load notices from gptqmodel's torchao
    name, rest = argv[0], argv[1:]
    add_arguments, run = _command(name)
    parser = argparse.ArgumentParser(prog=f"medmoe {name}", description=COMMANDS[name][3])
    add_arguments(parser)
    if name == "eval":  # everything else goes to lm-eval untouched
        args, extra = parser.parse_known_args(rest)
        args.lm_eval_args = extra
    else:
        args = parser.parse_args(rest)
    try:
        with _output_for(name):
            return int(run(args) or 0)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

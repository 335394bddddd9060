"""``medmoe plan``: how many items each task needs to detect a difference, before any model runs.

``medmoe plan --tasks medmoe_medqa,medmoe_medmcqa --delta 0.02 [--discordance 0.1] [--json]``
prints, per task (groups expand to their tasks), the items a paired comparison needs to detect
``delta`` with 80% power at the 5% level, the unpaired figure beside it, and the rows the task has
from the data source ``MEDMOE_DATA`` selects (``analysis.plan``). Nothing here loads a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from medmoe_lm_eval import settings
from medmoe_lm_eval.analysis.plan import PlanRow, plan

DEFAULT_DISCORDANCE = 0.10


def _fraction(name: str, low_open: bool = True) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not a number; fix: pass a share such as 0.02") from None
        if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
            raise argparse.ArgumentTypeError(f"{name} {text!r} must lie in {'(0, 1]' if low_open else '[0, 1]'} (0.02 is two points of accuracy)")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", required=True, help="comma-separated tasks or groups, e.g. medmoe_medqa,medmoe_medmcqa or medmoe_open_medical")
    parser.add_argument("--delta", required=True, type=_fraction("--delta"), help="the true difference to detect, as a share (0.02 = two points)")
    parser.add_argument(
        "--discordance", type=_fraction("--discordance"), default=DEFAULT_DISCORDANCE,
        help="expected share of items the two candidates answer differently (default 0.10, a model against its "
        "quantized copy; two different models disagree more, often 0.2-0.4: `medmoe compare --json` shows the observed one)",
    )  # fmt: skip
    parser.add_argument(
        "--accuracy", type=_fraction("--accuracy", low_open=False), default=0.5, help="expected accuracy for the unpaired figure (default 0.5, the worst case)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per task, instead of a table")


def run(args: argparse.Namespace) -> int:
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        rows = plan(names, args.delta, args.discordance, args.accuracy)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2, ensure_ascii=False))
        return 0
    _print(rows)
    return 0


def _print(rows: list[PlanRow]) -> None:
    from rich.table import Table
    from rich.text import Text

    from medmoe_lm_eval.console import cli_console

    console = cli_console(highlight=False)
    if not rows:
        return
    first = rows[0]
    title = f"Items to detect a difference of {first.delta:g} with 80% power (5% level, two-sided); paired at discordance {first.discordance:g}"
    table = Table(title=Text(title))
    for head in ("task", "paired: items needed", "unpaired: items per candidate", "items available", "enough?"):
        table.add_column(head, justify="left" if head == "task" else "right")
    for r in rows:
        enough = "—" if r.enough is None else "yes" if r.enough else "no"
        available = "—" if r.n_available is None else f"{r.n_available:,}"
        table.add_row(r.task, f"{r.n_needed:,}", f"{r.n_needed_unpaired:,}", available, enough)
    console.print(table)
    console.print(Text(f"items available from: {first.data_source} ({settings.DATA.name} chooses hub, bundled or a folder)", style="dim"))

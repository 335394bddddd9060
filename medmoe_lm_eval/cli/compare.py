"""``medmoe compare``: two candidates task by task, with paired intervals and tests.

The numbers are those of the leaderboard's Compare page (both call
``analysis.comparison.compare``): per task, A's and B's main metric on the documents both answered,
``delta = B - A`` with its 95% paired bootstrap interval, the paired test's p-value (exact McNemar
for 0/1 scores, paired permutation otherwise) and Holm's adjustment across the tasks. Where the
interval contains 0 the verdict is "no significant difference", shown with the MDE (the smallest
true difference the test would detect with 80% power) and how often a 2-point difference would go
unseen. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from medmoe_lm_eval.analysis.comparison import Comparison, compare
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("candidate_a", metavar="CAND_A", help="the first candidate (as the board names it)")
    parser.add_argument("candidate_b", metavar="CAND_B", help="the second candidate; delta = B - A")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (default: results/)")
    parser.add_argument("--json", action="store_true", help='print {"tasks": [...]} as JSON instead of a table')


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    known = results.candidates()
    for name in (args.candidate_a, args.candidate_b):
        if name not in known:
            print(f"error: candidate {name!r} is not in {args.results}; candidates there: {', '.join(known) or '(none)'}", file=sys.stderr)
            return 2
    comparison = compare(results, args.candidate_a, args.candidate_b)
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2, ensure_ascii=False))
        return 0
    _print(comparison)
    return 0


def _cell(value: float, digits: int = 4) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}g}"


def _print(comparison: Comparison) -> None:
    from rich.table import Table
    from rich.text import Text

    from medmoe_lm_eval.console import cli_console

    console = cli_console(highlight=False)
    title = Text(f"{comparison.a} (A) vs {comparison.b} (B): delta = B - A, 95% paired bootstrap interval, Holm across tasks")
    table = Table(title=title)
    for column in ("task", "metric", "A", "B", "delta", "95% interval", "p", "p (Holm)", "paired items", "test", "verdict", "MDE"):
        table.add_column(column, overflow="fold", justify="left" if column in ("task", "metric", "test", "verdict") else "right")
    for t in comparison.tasks:
        interval = f"[{_cell(t.ci_low)}, {_cell(t.ci_high)}]"
        cells = (t.task, t.metric, _cell(t.a), _cell(t.b), _cell(t.delta), interval, _cell(t.p_value, 3), _cell(t.p_holm, 3), str(t.n_paired), t.test)
        table.add_row(*(Text(c) for c in cells), Text(t.verdict(comparison.a, comparison.b)), Text(_cell(t.mde, 3)))
    console.print(table)
    for t in comparison.tasks:
        if t.note:
            console.print(Text(f"{t.task}: {t.note}", style="dim"))
        if t.power_note and t.verdict(comparison.a, comparison.b) == "no significant difference":
            clusters = f", {t.n_clusters} clusters resampled whole" if t.n_clusters else ""
            console.print(Text(f"{t.task}: {t.power_note} (MDE {_cell(t.mde, 3)}{clusters})", style="dim"))
    for side, tasks in ((comparison.a, comparison.only_a), (comparison.b, comparison.only_b)):
        if tasks:
            console.print(Text(f"only {side} ran: {', '.join(tasks)} (not compared)", style="dim"))
    for note in comparison.notes:
        console.print(Text(note, style="yellow"))

"""``medmoe routing``: the router scorecard of one mixture candidate (``analysis.scorecard``).

Routing accuracy against the task's domain, the confusion matrix, agreement with the oracle's
choice, regret = oracle - router against the oracle mixture over the same experts (paired
intervals; the sign the Routing page and ``--json`` use too), the share of
the gap between the best single expert and the oracle that the router recovers, and the router's
time per decision. The leaderboard's Routing page shows the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from medmoe_lm_eval.analysis.precision import fixed, interval_decimals
from medmoe_lm_eval.analysis.routing import mixture_candidates
from medmoe_lm_eval.analysis.scorecard import REGRET_DEFINITION, Scorecard, scorecard
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (default: results/)")
    parser.add_argument("--candidate", required=True, help="a mixture candidate (kind: moe) as the board names it")
    parser.add_argument("--json", action="store_true", help="print the scorecard as JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    mixtures = mixture_candidates(results)
    if args.candidate not in mixtures:
        print(f"error: --candidate {args.candidate!r} is not a mixture in {args.results}; mixtures there: {', '.join(mixtures) or '(none)'}", file=sys.stderr)
        return 2
    card = scorecard(results, args.candidate)
    if args.json:
        print(json.dumps(card.to_json(), indent=2, ensure_ascii=False))
        return 0
    _print(card)
    return 0


def _cell(value: float | None, fmt: str = ".3f") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, fmt)


def _print(card: Scorecard) -> None:
    from rich.table import Table
    from rich.text import Text

    from medmoe_lm_eval.console import cli_console

    console = cli_console(highlight=False)
    console.print(Text(f"Router scorecard: {card.candidate}", style="bold"))
    console.print(
        Text(
            f"routing accuracy {_cell(card.routing_accuracy)} ({card.fallbacks} fallbacks) · oracle {card.oracle_candidate or '(none)'} · best single expert {card.best_single or '(none)'}"
            f" · gap recovered {_cell(card.gap_recovered)} · router ms p50 {_cell(card.router_ms_p50, '.3g')} p99 {_cell(card.router_ms_p99, '.3g')}"
        )
    )
    table = Table(
        title=Text(
            f"Per task: agreement with the oracle's choice; regret = {REGRET_DEFINITION} (positive: routing lost accuracy), 95% paired bootstrap interval"
        )
    )
    for head in ("task", "domain", "requests", "agreement", "metric", "regret", "95% interval", "p", "paired"):
        table.add_column(head, overflow="fold", justify="left" if head in ("task", "domain", "metric") else "right")
    for t in card.tasks:
        places = interval_decimals(t.regret_ci_low, t.regret_ci_high)  # the precision the interval supports
        interval = "—" if not math.isfinite(t.regret_ci_low) else f"[{fixed(t.regret_ci_low, places, True)}, {fixed(t.regret_ci_high, places, True)}]"
        cells = (
            t.task,
            t.domain or "?",
            str(t.requests),
            _cell(t.agreement),
            t.metric or "—",
            fixed(t.regret, places, signed=True),
            interval,
            _cell(t.p_value, ".3g"),
            str(t.n_paired),
        )
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    if not card.confusion.empty:
        confusion = Table(title=Text("Requests: task domain (rows) x routed domain (columns)"))
        confusion.add_column("task domain")
        for col in card.confusion.columns:
            confusion.add_column(str(col), justify="right")
        for domain, row in card.confusion.iterrows():
            confusion.add_row(Text(str(domain)), *(Text(str(int(v))) for v in row))
        console.print(confusion)
    for note in card.notes:
        console.print(Text(note, style="yellow"))

"""``medmoe fidelity``: every quantized copy on the board against its full-precision parent.

Per copy and task, on the documents both answered: agreement, flips both ways (counts, rates with
95% intervals, and the paired accuracy change), KL divergence between the answer distributions
(mean, p99) and the perplexity ratio on the perplexity tasks; worst copy first
(``analysis.fidelity``, the numbers of the leaderboard's Fidelity page). A copy names its parent
with ``parent:`` in its adapter (``medmoe quantize`` writes it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from medmoe_lm_eval.analysis.fidelity import FidelityRow, fidelity
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (default: results/)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per copy and task, instead of a table")


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    if not results.candidates():
        print(f"error: no results in {args.results}; fix: run `medmoe eval ... --output_path {args.results} --log_samples` first", file=sys.stderr)
        return 2
    rows, notes = fidelity(results)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2, ensure_ascii=False))
        return 0
    _print(rows, notes)
    return 0


def _cell(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return str(value) if isinstance(value, int) else f"{value:.{digits}g}"


def _rate(rate: float, low: float, high: float) -> str:
    return "—" if not math.isfinite(rate) else f"{rate:.3f} [{low:.3f}, {high:.3f}]"


def _cells(r: FidelityRow) -> tuple[str, ...]:
    delta = "—" if not math.isfinite(r.delta) else f"{r.delta:+.3f} [{r.delta_low:+.3f}, {r.delta_high:+.3f}]"
    return (
        r.candidate, r.parent, r.task, str(r.n_paired), _cell(r.agreement), f"{_cell(r.flips_correct_to_wrong)}",
        _rate(r.flip_cw_rate, r.flip_cw_low, r.flip_cw_high), f"{_cell(r.flips_wrong_to_correct)}",
        _rate(r.flip_wc_rate, r.flip_wc_low, r.flip_wc_high), delta, _cell(r.kl_mean), _cell(r.kl_p99), _cell(r.ppl_ratio, 4),
    )  # fmt: skip


def _print(rows: list[FidelityRow], notes: list[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    from medmoe_lm_eval.console import cli_console

    console = cli_console(highlight=False)
    if not rows:
        console.print("No quantized copy with a parent on this board (an adapter names its parent with `parent: <candidate>`).")
    else:
        table = Table(title=Text("Fidelity of each copy to its parent, worst first (paired documents; rates with 95% Wilson intervals)"))
        heads = ("copy", "parent", "task", "paired", "agreement", "c→w", "c→w rate", "w→c", "w→c rate", "Δ acc [95%]", "KL mean", "KL p99", "ppl ratio")
        for head in heads:
            table.add_column(head, overflow="fold", justify="left" if head in ("copy", "parent", "task") else "right")
        for r in rows:
            table.add_row(*(Text(c) for c in _cells(r)))
        console.print(table)
    for note in notes:
        console.print(Text(note, style="yellow"))

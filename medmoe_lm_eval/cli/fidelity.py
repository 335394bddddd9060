"""``medmoe fidelity``: every quantized copy on the board against its full-precision parent.

Per copy and task, on the documents both answered: agreement, flips both ways (counts, rates with
95% intervals, and the paired accuracy change), KL divergence between the answer distributions
(mean, p99) and the perplexity ratio on the perplexity tasks; whether the copy is good enough:
accuracy recovery (copy / parent) and the same-top-answer rate with 95% intervals, and a
non-inferiority verdict at ``--margin`` (default one point); worst copy first
(``analysis.fidelity``, the numbers of the leaderboard's Fidelity page). A copy names its parent
with ``parent:`` in its adapter (``medmoe quantize`` writes it), or the parent's model with ``parent_model:``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from medmoe_lm_eval.analysis.fidelity import FidelityRow, fidelity
from medmoe_lm_eval.analysis.noninferiority import DEFAULT_MARGIN
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (default: results/)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per copy and task, instead of a table")
    parser.add_argument(
        "--margin", type=_margin, default=DEFAULT_MARGIN,
        help="non-inferiority margin on the task's metric: a copy losing less than this is good enough (default 0.01, one point of accuracy)",
    )  # fmt: skip


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--margin {text!r} is not a number; fix: pass a loss such as 0.01 (one point)") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"--margin {text!r} must be at least 0 and below 1 (0.01 is one point of accuracy)")
    return value


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    if not results.candidates():
        print(f"error: no results in {args.results}; fix: run `medmoe eval ... --output_path {args.results} --log_samples` first", file=sys.stderr)
        return 2
    rows, notes = fidelity(results, args.margin)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2, ensure_ascii=False))
        return 0
    _print(rows, notes, args.margin)
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
        _rate(r.flip_wc_rate, r.flip_wc_low, r.flip_wc_high), delta, _rate(r.recovery, r.recovery_ci_low, r.recovery_ci_high),
        _rate(r.same_top, r.same_top_ci_low, r.same_top_ci_high), r.verdict_text or "—", _cell(r.kl_mean), _cell(r.kl_p99), _cell(r.ppl_ratio, 4),
    )  # fmt: skip


def _print(rows: list[FidelityRow], notes: list[str], margin: float) -> None:
    from rich.table import Table
    from rich.text import Text

    from medmoe_lm_eval.console import cli_console, escape_controls

    console = cli_console(highlight=False)
    if not rows:
        console.print("No quantized copy with a parent on this board (an adapter names its parent with `parent: <candidate>`).")
    else:
        title = f"Fidelity of each copy to its parent, worst first (paired documents; 95% intervals; non-inferiority margin {margin:g})"
        table = Table(title=Text(title))
        heads = (
            "copy",
            "parent",
            "task",
            "paired",
            "agreement",
            "c→w",
            "c→w rate",
            "w→c",
            "w→c rate",
            "Δ acc [95%]",
            "recovery [95%]",
            "same top [95%]",
            "verdict",
            "KL mean",
            "KL p99",
            "ppl ratio",
        )
        cells = [[Text(c) for c in _cells(r)] for r in rows]
        for i, head in enumerate(heads):
            # names stay whole up to 64 characters (wider tables fold the figures, not who they are about)
            whole = min(64, max(len(escape_controls(row[i].plain)) for row in cells)) if head in ("copy", "parent") else None
            table.add_column(head, overflow="fold", min_width=whole, justify="left" if head in ("copy", "parent", "task", "verdict") else "right")
        for row in cells:
            table.add_row(*row)
        console.print(table)
    for note in notes:
        console.print(Text(note, style="yellow"))

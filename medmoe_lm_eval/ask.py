"""``medmoe ask``: type a question, see the gate weights, the activated experts and the answer."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from medmoe_lm_eval.consult import Answer, Consultant, Decision, EmptyQuestion

DISCLAIMER = "Answers come from the evaluated models and are not medical or legal advice."
BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", nargs="?", help="the question; leave it out for an interactive session (exit or Ctrl-D ends it)")
    parser.add_argument("--adapter", required=True, help="adapter YAML or bundled adapter name")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the adapter's, auto)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--task", default=None, help="task name the question belongs to (needed by an oracle router)")


def gate_table(decision: Decision) -> Table:
    """The router's gate as a small bar chart, activated experts marked."""
    table = Table(title="router gate", show_edge=False)
    for column in ("expert", "weight", "", "p(expert|question)", "active"):
        table.add_column(column)
    for name, weight in sorted(decision.gate.items(), key=lambda kv: -kv[1]):
        bar = "█" * round(weight * BAR_WIDTH)
        prob = decision.router_probs.get(name)
        table.add_row(name, f"{weight:.3f}", f"[green]{bar}[/]", "" if prob is None else f"{prob:.3f}", decision.role(name))
    return table


def consult_once(consultant: Consultant, question: str, task: str | None, console: Console) -> Answer:
    decision = consultant.decide(question, task)
    console.print(gate_table(decision))
    console.print(f"activated: {', '.join(f'{e} ({w:.2f})' for e, w in zip(decision.route.experts, decision.route.weights))} · routing {decision.routing_ms:.2f} ms")
    console.print(f"[bold]{decision.route.top}[/] answers:", end=" ")
    answer = Answer()
    for piece, answer in consultant.answer(decision):
        console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    for note in answer.notes:
        console.print(f"[yellow]note:[/] {note}")
    rate = answer.tokens / answer.generation_s if answer.generation_s > 0 else 0.0
    console.print(f"[dim]generation {answer.generation_s:.2f} s · {answer.tokens} tokens · {rate:.1f} tokens/s[/]")
    return answer


def run(args: argparse.Namespace) -> int:
    console = Console()
    consultant = Consultant(args.adapter, device=args.device, max_new_tokens=args.max_new_tokens)
    console.print(f"[dim]{consultant.cfg.name}: {DISCLAIMER}[/]")
    try:
        if args.question is not None:
            try:
                consult_once(consultant, args.question, args.task, console)
            except EmptyQuestion as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            return 0
        return _loop(consultant, args.task, console)
    finally:
        consultant.close()


def _loop(consultant: Consultant, task: str | None, console: Console) -> int:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            console.print("[bold]question>[/] ", end="")
        line = sys.stdin.readline()
        if not line:  # Ctrl-D / end of input
            return 0
        question = line.strip()
        if question.lower() in ("exit", "quit"):
            return 0
        try:
            consult_once(consultant, question, task, console)
        except EmptyQuestion:
            console.print("[yellow]type a question, or exit[/]")

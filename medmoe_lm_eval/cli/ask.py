"""``medmoe ask``: type a question, see the gate weights, the activated experts and the answer."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medmoe_lm_eval.console import cli_console
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.consult import Answer, Consultant, Decision, EmptyQuestion

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


def activated_line(decision: Decision) -> str:
    """``activated: bio 0.78 (top) · law 0.02 (routed) · general 0.20 (shared)``."""
    parts = [f"{e} {w:.2f} ({decision.role(e)})" for e, w in zip(decision.route.experts, decision.route.weights)]
    return f"activated: {' · '.join(parts)} · routing {decision.routing_ms:.2f} ms"


def consult_once(consultant: Consultant, question: str, task: str | None, console: Console) -> Answer:
    decision = consultant.decide(question, task)
    console.print(gate_table(decision))
    console.print(activated_line(decision), markup=False, highlight=False)
    answer, started = Answer(), False
    for piece, answer in consultant.answer(decision):
        if not started:  # first event: the top expert is loaded (on first use) and generating
            started = True
            if answer.load_s > 0:
                console.print(f"[dim]loaded expert '{answer.expert}' in {answer.load_s:.2f} s (first use; kept loaded)[/]")
            console.print(f"[bold]{answer.expert}[/] answers:", end=" ")
        console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    for note in answer.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    rate = answer.tokens / answer.generation_s if answer.generation_s > 0 else 0.0
    console.print(f"[dim]generation {answer.generation_s:.2f} s · {answer.tokens} tokens · {rate:.1f} tokens/s[/]")
    return answer


def run(args: argparse.Namespace) -> int:
    if args.question is not None and not args.question.strip():
        print("error: empty question; fix: type a question, or leave it out for an interactive session", file=sys.stderr)
        return 2
    console = cli_console()
    consultant = Consultant(args.adapter, device=args.device, max_new_tokens=args.max_new_tokens)
    if consultant.cfg.router is not None and consultant.cfg.router.type == "oracle" and not args.task:
        consultant.close()
        print(
            f"error: {consultant.cfg.name}: the oracle router routes by the task's domain, not by the question; fix: pass --task <task name>", file=sys.stderr
        )
        return 2
    console.print(f"[dim]{escape(consultant.cfg.name)}: {DISCLAIMER}[/]")
    for note in consultant.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    try:
        if args.question is not None:
            consult_once(consultant, args.question, args.task, console)
            return 0
        return _loop(consultant, args.task, console)
    finally:
        consultant.close()


def _loop(consultant: Consultant, task: str | None, console: Console) -> int:
    """One question per line until ``exit``, ``quit`` or end of input; experts stay loaded."""
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("[dim]type a question and press Enter; exit or Ctrl-D ends the session[/]")
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
        except BackendError as exc:  # one expert failed to load or answer: say so, keep the session
            console.print()
            console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)

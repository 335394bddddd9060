"""``medmoe leaderboard`` and ``medmoe rank``: the commands that serve, export and print the board.

The three forms show the same numbers because they call the same functions: ``store.results``
reads the folder, ``analysis.ranking`` ranks it, and ``analysis.board_export`` lays the result out
(rich, HTML, Markdown); this module parses the command lines and starts
``streamlit run leaderboard/app.py`` on 127.0.0.1 with the folder in ``MEDMOE_RESULTS``.
Nothing here imports torch or Streamlit, so ``medmoe rank`` starts quickly.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from medmoe_lm_eval import settings
from medmoe_lm_eval.analysis.board_export import export_board, ranking_renderables
from medmoe_lm_eval.analysis.ranking import rank_results
from medmoe_lm_eval.analysis.use_cases import UseCase, default_use_cases_path, load_use_cases
from medmoe_lm_eval.analysis.views import ranking_json
from medmoe_lm_eval.paths import leaderboard_dir
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"
DEFAULT_PORT = 8501


# ---------------------------------------------------------------------------------------------
# medmoe leaderboard


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (read only; default: results/)")
    parser.add_argument("--export", metavar="FILE", help="write a static board to FILE (.html or .md) instead of serving it")
    parser.add_argument("--use-cases", metavar="YAML", help="use-case profiles (default: the bundled medmoe_lm_eval/analysis/use_cases.yaml)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")


def streamlit_command(port: int = DEFAULT_PORT) -> list[str]:
    """``streamlit run`` bound to 127.0.0.1, headless, without usage statistics."""
    return [
        sys.executable, "-m", "streamlit", "run", str(leaderboard_dir() / "app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.runOnSave", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def streamlit_env(results: str | Path, use_cases: str | Path | None = None) -> dict[str, str]:
    env = {**os.environ, settings.RESULTS.name: str(Path(results).resolve())}
    if use_cases:
        env[settings.USE_CASES.name] = str(Path(use_cases).resolve())
    return env


def run_leaderboard(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if args.export:
        return _export(args, results)
    if not results.is_dir():
        print(f"error: results folder {results} does not exist; run `medmoe eval ... --output_path {results}` first", file=sys.stderr)
        return 2
    if importlib.util.find_spec("streamlit") is None:
        print("error: the leaderboard needs Streamlit; fix: pip install 'medmoe-lm-eval[leaderboard]' (or use --export board.html)", file=sys.stderr)
        return 2
    print(f"Serving {results.resolve()} read-only at http://127.0.0.1:{args.port}  (Ctrl-C stops it)", flush=True)
    return _serve(streamlit_command(args.port), streamlit_env(results, args.use_cases))


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run Streamlit as a child; SIGTERM or Ctrl-C on this process stops the child too."""
    proc = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        signal.signal(signal.SIGTERM, previous)


def _export(args: argparse.Namespace, results_dir: Path) -> int:
    results = load_results(results_dir)
    cases, problems = load_use_cases(args.use_cases)
    try:
        target = export_board(results, cases, args.export, problems)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in [*(str(i) for i in results.warnings), *problems]:
        print(f"warning: {line}", file=sys.stderr)
    print(f"wrote {target} ({len(results.candidates())} candidates, {len(cases)} use cases)")
    return 0


# ---------------------------------------------------------------------------------------------
# medmoe rank


def add_rank_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (default: results/)")
    parser.add_argument("--use-case", default="all", help="use-case slug (chatbot, diagnosis, edge, research, ...) or 'all'")
    parser.add_argument("--use-cases", metavar="YAML", help="use-case profiles (default: the bundled medmoe_lm_eval/analysis/use_cases.yaml)")
    parser.add_argument("--list", action="store_true", help="list the use cases and exit")
    parser.add_argument("--top", type=int, default=0, help="show only the first N rows (0 = all)")
    parser.add_argument("--wide", action="store_true", help="every column (figures with their intervals, per-task quality, counts); default: fits 120 columns")
    parser.add_argument(
        "--json", action="store_true", help="print the ranking as JSON (one use case: its notes and candidates, best first; 'all': an object per use-case slug)"
    )


def _rank_json(args: argparse.Namespace) -> int:
    """``--json``: one use case's ranking as a JSON object on stdout (``notes``, ``candidates``), or with
    ``--use-case all`` (the default) one such object per use-case slug; problems on stderr."""
    import json

    cases, problems = load_use_cases(args.use_cases or default_use_cases_path())
    if args.use_case != "all" and args.use_case not in cases:
        print(f"error: unknown --use-case {args.use_case!r}; choose one of: {', '.join(cases) or '(none defined)'} or 'all'", file=sys.stderr)
        return 2
    results = load_results(args.results)
    warnings = [*problems, *(str(i) for i in results.warnings)]
    if results.frame.empty:  # a failure is one line; the text command lists every warning
        more = f" (and {len(warnings) - 1} more warning(s): medmoe rank without --json lists them)" if len(warnings) > 1 else ""
        print(f"error: no results to rank in {args.results}" + (f": {warnings[0]}{more}" if warnings else ""), file=sys.stderr)
        return 1
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)

    def one(case: UseCase) -> dict:
        out = ranking_json(rank_results(results, case))
        if args.top > 0:
            out["candidates"] = out["candidates"][: args.top]
        return out

    out = one(cases[args.use_case]) if args.use_case != "all" else {slug: one(case) for slug, case in cases.items()}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0  # an empty ranking is an answer: its message says why


def run_rank(args: argparse.Namespace) -> int:
    from medmoe_lm_eval.console import cli_console

    if args.json and not args.list:
        return _rank_json(args)
    console = cli_console(highlight=False)
    cases, problems = load_use_cases(args.use_cases or default_use_cases_path())
    for line in problems:
        console.print(f"[yellow]warning:[/] {_plain(line)}")
    if args.list:
        for slug, case in cases.items():
            console.print(f"[bold]{slug}[/]  {_plain(case.name)}")
        return 0
    chosen = list(cases.values()) if args.use_case == "all" else [cases[args.use_case]] if args.use_case in cases else None
    if chosen is None:
        console.print(f"[red]error:[/] unknown use case '{_plain(args.use_case)}'; choose one of: {', '.join(cases) or '(none defined)'} or 'all'")
        return 2
    results = load_results(args.results)
    for issue in results.warnings:
        console.print(f"[yellow]warning:[/] {_plain(str(issue))}")
    if results.frame.empty:
        console.print(f"No results to rank in {_plain(str(args.results))}.")
        return 1
    for case in chosen:
        for item in ranking_renderables(rank_results(results, case), args.top, wide=args.wide):
            console.print(item)
    return 0


def _plain(text: str) -> str:
    from rich.markup import escape

    return escape(text)

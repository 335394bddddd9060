"""``medmoe leaderboard`` and ``medmoe rank``: the Streamlit board, its static export, the terminal table.

The three forms show the same numbers because they call the same functions: ``results`` reads the
folder, ``ranking`` ranks it, and this module only lays the result out (rich, HTML, Markdown) or
starts ``streamlit run leaderboard/app.py`` on 127.0.0.1 with the folder in ``MEDMOE_RESULTS``.
Nothing here imports torch or Streamlit, so ``medmoe rank`` starts quickly.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medmoe_lm_eval import settings
from medmoe_lm_eval.analysis.ranking import Ranking, rank_results
from medmoe_lm_eval.analysis.use_cases import UseCase, default_use_cases_path, load_use_cases
from medmoe_lm_eval.analysis.views import overview_table, ranking_display, ranking_json, summary_display, utc_now
from medmoe_lm_eval.paths import leaderboard_dir
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.results import load_results

DEFAULT_RESULTS = "results"
DEFAULT_PORT = 8501


# ---------------------------------------------------------------------------------------------
# Tables in display form (shared by the app, the terminal and the export)


# ---------------------------------------------------------------------------------------------
# Static export


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#~|])")


def _md_cell(value: object) -> str:
    """Markdown-safe text: HTML escaped, markdown punctuation and pipes backslashed, one line."""
    text = "—" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text)).replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    head = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(no rows)</em></p>"
    return frame.to_html(index=False, escape=True, na_rep="—", border=0, classes="board", float_format=lambda v: f"{v:.4g}")


def _sections(results: ResultsSet, cases: dict[str, UseCase]) -> list[tuple[str, str | None, pd.DataFrame]]:
    """(title, note, table) triples every export format renders the same way."""
    out: list[tuple[str, str | None, pd.DataFrame]] = [("Candidates (mean win rate over tasks)", None, summary_display(results.frame))]
    for case in cases.values():
        ranking = rank_results(results, case)
        limits = "; ".join(lim.describe() for lim in case.limits) or "none"
        note = " ".join(
            [f"{case.description} Hard limits: {limits}.", *([ranking.message] if ranking.message else []), *(f"{n[0].upper()}{n[1:]}." for n in ranking.notes)]
        )
        out.append((f"Use case: {case.name}", note.strip(), ranking_display(ranking)))
    table = overview_table(results.frame)
    table = table.assign(date=table["date"].astype(str)).drop(columns=["run_id"])
    out.append(("All results (accuracy-type metrics)", None, table))
    return out


def export_board(results: ResultsSet, cases: dict[str, UseCase], target: str | Path, problems: Sequence[str] = ()) -> Path:
    """Write the board as a static ``.html`` or ``.md`` page (for CI artifacts and READMEs)."""
    target = Path(target)
    if target.suffix.lower() not in (".html", ".htm", ".md"):
        raise ValueError(f"--export {target}: use a .html or .md file name")
    sections = _sections(results, cases)
    lines = [*(str(i) for i in results.warnings), *problems]
    if target.suffix.lower() == ".md":
        text = _markdown_page(results, sections, lines)
    else:
        text = _html_page(results, sections, lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def _markdown_page(results: ResultsSet, sections, warnings: Sequence[str]) -> str:
    parts = [f"# medmoe leaderboard\n\nResults folder {_md_cell(results.root)}, generated {utc_now()}.\n"]
    if warnings:
        parts.append("**Warnings while reading results**\n\n" + "".join(f"- {_md_cell(w)}\n" for w in warnings))
    for title, note, table in sections:
        parts.append(f"## {_md_cell(title)}\n\n" + (f"{_md_cell(note)}\n\n" if note else "") + markdown_table(table))
    return "\n".join(parts)


_CSS = "body{font-family:system-ui,sans-serif;margin:2rem;}table.board{border-collapse:collapse;font-size:.85rem;margin-bottom:2rem}table.board td,table.board th{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}.warn{background:#fff4e5;padding:.5rem 1rem;border-left:4px solid #f0a020}"


def _html_page(results: ResultsSet, sections, warnings: Sequence[str]) -> str:
    esc = html.escape
    body = [f"<h1>medmoe leaderboard</h1><p>Results folder <code>{esc(results.root)}</code>, generated {esc(utc_now())}.</p>"]
    if warnings:
        body.append('<div class="warn"><strong>Warnings while reading results</strong><ul>' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul></div>")
    for title, note, table in sections:
        body.append(f"<h2>{esc(title)}</h2>" + (f"<p>{esc(note)}</p>" if note else "") + _html_table(table))
    return f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medmoe leaderboard</title><style>{_CSS}</style></head><body>{"".join(body)}</body></html>\n'


# ---------------------------------------------------------------------------------------------
# medmoe leaderboard


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="folder of lm-eval results (read only; default: results/)")
    parser.add_argument("--export", metavar="FILE", help="write a static board to FILE (.html or .md) instead of serving it")
    parser.add_argument("--use-cases", metavar="YAML", help="use-case profiles (default: leaderboard/use_cases.yaml)")
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
    parser.add_argument("--use-cases", metavar="YAML", help="use-case profiles (default: leaderboard/use_cases.yaml)")
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


def rank_tables(results_dir: str | Path, use_cases: str | Path | None = None, top: int = 0, why: bool = True) -> list:
    """Rich renderables ranking every use case over ``results_dir`` (for reports such as the demo).

    ``why=False`` leaves out the sentence saying what carried each rank: in a summary it wraps
    every row over several lines, and ``medmoe rank`` prints it in full.
    """
    results = load_results(results_dir)
    cases, _ = load_use_cases(use_cases)
    if results.frame.empty:
        return []
    # without the 'why' a summary keeps the figures themselves (the wide table, as the demo prints it)
    return [item for case in cases.values() for item in ranking_renderables(rank_results(results, case), top, why, wide=not why)]


def _plain(text: str) -> str:
    from rich.markup import escape

    return escape(text)


#: the columns of the default terminal table: the answer (rank, its range, tie mark, who, score) and
#: the sentence saying which limits held and which figure carried the rank; ``--wide`` adds the rest
_NARROW = ("rank", "rank range", "tied", "candidate", "kind", "score", "why")
_RIGHT = ("rank", "rank range", "score", "tasks", "items")


def _cell(value: object) -> str:
    """A terminal cell: '—' for a missing value, a score at a fixed three decimals (0.480, not 0.48)."""
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{value:.3f}"
    return str(value)


def ranking_renderables(ranking: Ranking, top: int = 0, why: bool = True, wide: bool = False) -> list:
    """A rich table for one use case, then its plain message and notes (names never parsed as markup).

    The default table fits 120 columns: the figures a rank rests on are named, with their values, in
    its 'why'; ``wide=True`` shows every figure with its interval, per-task quality and counts.
    """
    from rich.table import Table
    from rich.text import Text

    case = ranking.use_case
    limits = "; ".join(lim.describe() for lim in case.limits) or "none"
    caption = (
        f"hard limits: {limits}. Score: {ranking.method}. Rank = 1 + candidates significantly better (max-t bootstrap over all pairs): "
        "candidates not told apart share it; range = joint 95% set of ranks; '=': not told apart from the top score."
    )
    table = Table(title=Text(f"{case.name} ({case.slug})"), caption=Text(caption), caption_justify="left")
    display = ranking_display(ranking, max_task_columns=3 if wide else 0)
    if top > 0:
        display = display.head(top)
    display = display.drop(columns=["notes"], errors="ignore")  # printed below the table, one line per note
    if not wide:
        display = display[[c for c in _NARROW if c in display.columns]]
        display = display.assign(tied=display["tied"].map(lambda t: "=" if t else "")).rename(columns={"rank range": "range", "tied": "="})
    if not why:
        display = display.drop(columns=["why"], errors="ignore")
    longest = max((len(str(c)) for c in display["candidate"]), default=9)
    for column in display.columns:
        # a candidate's name is what a reader looks for and copies: whole on one line up to 40
        # characters, folded (never cut) beyond; 'why' takes the width that is left
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in ("rank", "range", "rank range", "=", "kind", "score"),
            min_width=min(longest, 40) if column == "candidate" else None,
            ratio=1 if column == "why" else None,
            justify="right" if column in (*_RIGHT, "range") else "left",
        )
    for row in display.itertuples(index=False):
        table.add_row(*(Text(_cell(v)) for v in row))
    extra = [Text(ranking.message, style="bold yellow")] if ranking.message else []
    if ranking.coverage is not None and ranking.coverage.tasks:
        extra.append(Text(f"counted tasks: {', '.join(ranking.coverage.tasks)}", style="dim"))
    shown = set(display["candidate"])
    per = [Text(f"{name}: {note}", style="dim") for name, notes in ranking.candidate_notes.items() if name in shown for note in notes]
    return [table, *extra, *(Text(note, style="dim") for note in ranking.notes), *per, Text("")]

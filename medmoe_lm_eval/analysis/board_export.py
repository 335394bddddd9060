"""How the board looks outside Streamlit: the static HTML/Markdown export and the terminal ranking.

``medmoe leaderboard --export``, ``medmoe rank`` and the demo's report lay out the same numbers
(``store.results`` reads the folder, ``analysis.ranking`` ranks it) as HTML, Markdown or rich
tables. This is presentation only, kept apart from the commands (``cli.board``) so the demo and
any other front end reuse it without importing a command module. Nothing here imports torch or
Streamlit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medmoe_lm_eval.analysis.ranking import Ranking, rank_results
from medmoe_lm_eval.analysis.use_cases import UseCase, load_use_cases
from medmoe_lm_eval.analysis.views import overview_table, ranking_display, summary_display, utc_now
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.results import load_results

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
# Terminal tables (``medmoe rank`` and reports)


def rank_tables(results_dir: str | Path, use_cases: str | Path | None = None, top: int = 0, why: bool = True, width: int | None = None) -> list:
    """Rich renderables ranking every use case over ``results_dir`` (for reports such as the demo).

    ``why=False`` leaves out the sentence saying what carried each rank: in a summary it wraps
    every row over several lines, and ``medmoe rank`` prints it in full. Such a summary shows the
    figures themselves (the wide table) where they fit ``width`` columns unfolded, and the narrow
    table where they do not: squeezed into 80 columns the wide one folds every header into
    two-letter pieces and cuts its caption off.
    """
    results = load_results(results_dir)
    cases, _ = load_use_cases(use_cases)
    if results.frame.empty:
        return []
    out: list = []
    for case in cases.values():
        ranking = rank_results(results, case)
        shown = ranking_renderables(ranking, top, why, wide=not why)
        if not why and width is not None and _natural_width(shown[0]) > width:
            shown = ranking_renderables(ranking, top, why, wide=False)
        out += shown
    return out


def _natural_width(table: Any) -> int:
    """The columns ``table`` takes with no cell folded."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(width=10_000)
    return Measurement.get(probe, probe.options, table).maximum


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

"""The rich console the CLI prints through: sized so its tables survive a log file, and showing
control characters from a results folder as text instead of sending them to the terminal.

A results folder may come from elsewhere, and a candidate, task or metric name holding
ESC/CSI/OSC sequences would clear the screen, set the window title or recolour the table
("FAKE-WINNER") if printed raw. Every string the CLI shows goes through one of two doors, and both
escape C0 and C1 control characters (all but newline and tab) as ``\\u001b``-style text, on a
terminal and when redirected alike:

* :class:`SafeConsole` (what :func:`cli_console` returns) escapes every ``str`` and ``Text`` it
  renders, table cells, titles and captions included, so rich's own colours still work;
* :func:`escaped_output` wraps ``sys.stdout``/``sys.stderr`` for a command's plain ``print``
  calls (warnings, errors, ``--json``: the ``\\u009b`` form is valid inside a JSON string and
  reads back as the same character).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderableType, RenderHook
from rich.segment import Segment
from rich.table import Table
from rich.text import Span, Text

LOG_WIDTH = 200

#: C0 controls but tab and newline, DEL, and C1 controls -> their visible ``\uXXXX`` form
_CONTROLS = {code: f"\\u{code:04x}" for code in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}


def escape_controls(text: str) -> str:
    """``text`` with every control character but newline and tab shown as ``\\u001b``-style text."""
    return text.translate(_CONTROLS)


def has_controls(text: str) -> bool:
    return escape_controls(text) != text


def _escaped_text(text: Text) -> Text:
    """A copy of ``text`` with its control characters escaped, each keeping its styles."""
    cuts = sorted({i + d for i, ch in enumerate(text.plain) if ord(ch) in _CONTROLS for d in (0, 1)})
    out = text.blank_copy()
    for piece in text.divide(cuts):
        if len(piece.plain) == 1 and ord(piece.plain) in _CONTROLS:
            shown = _CONTROLS[ord(piece.plain)]
            piece = Text(shown, style=piece.style, spans=[Span(0, len(shown), span.style) for span in piece.spans])
        out.append_text(piece)
    return out


def _escaped(renderable: Any) -> Any:
    """``renderable`` with control characters escaped where it is text, or a table of text
    (cells, headers, title, caption: before rich measures the columns); else as it is."""
    if isinstance(renderable, Text):
        return _escaped_text(renderable) if has_controls(renderable.plain) else renderable
    if isinstance(renderable, str):
        return escape_controls(renderable)
    if isinstance(renderable, Table):
        renderable.title, renderable.caption = _escaped(renderable.title), _escaped(renderable.caption)
        for column in renderable.columns:
            column.header, column.footer = _escaped(column.header), _escaped(column.footer)
            column._cells = [_escaped(cell) for cell in column._cells]
    return renderable


class _EscapeHook(RenderHook):
    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_escaped(r) for r in renderables]


class SafeConsole(Console):
    """A rich console that never writes a control character it was given to render.

    What is printed is escaped before rich lays it out (a render hook: text and tables), so
    columns fit the visible text; then, as a backstop, every string (:meth:`render_str`) and every
    ``Text`` on its way to the terminal (:meth:`render`), which any nested renderable passes through.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.push_render_hook(_EscapeHook())

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(escape_controls(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        if isinstance(renderable, Text) and has_controls(renderable.plain):
            renderable = _escaped_text(renderable)
        return super().render(renderable, options)


class _EscapingStream:
    """A text stream that escapes control characters in what it is given, then passes it on."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(escape_controls(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@contextlib.contextmanager
def escaped_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` escaping control characters while a command prints."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(saved[0]), _EscapingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def cli_console(**kwargs: Any) -> SafeConsole:
    """A console for ``medmoe`` commands (a :class:`SafeConsole`).

    Rich falls back to 80 columns when stdout is not a terminal, which squeezes the leaderboard's
    and the profile's many-column tables into ellipses in CI logs and ``> file`` redirects. There
    is no reader's window to fit then, so use a wide fixed width; ``COLUMNS`` still wins. It writes
    past :func:`escaped_output` (it escapes what it renders itself, and its colours must reach the
    terminal).
    """
    stream = kwargs.get("file") or (sys.stderr if kwargs.get("stderr") else sys.stdout)
    if isinstance(stream, _EscapingStream):
        stream = kwargs["file"] = stream.raw
    if "width" not in kwargs and "COLUMNS" not in os.environ and not stream.isatty():
        kwargs["width"] = LOG_WIDTH
    return SafeConsole(**kwargs)

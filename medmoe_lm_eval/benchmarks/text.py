"""Text clean-up for benchmark rows: HTML to text, trimming, picking the best forum answer."""

from __future__ import annotations

from collections.abc import Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


def best_answer(answers: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-scored answer (the first one on ties), or None when there is none."""
    best = None
    for ans in answers or ():
        if best is None or (ans.get("score") or 0) > (best.get("score") or 0):
            best = ans
    return best


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"p", "br", "div", "li", "ul", "ol", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Stack Exchange HTML to plain text: tags dropped, entities decoded, blocks on their own lines."""
    parser = _TextExtractor()
    parser.feed(markup or "")
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def trim(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` at a whitespace boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > max_chars // 2 else cut

"""``yaml.safe_load`` with a bound on nesting, for YAML someone else may have written.

PyYAML composes nodes recursively: a document nested a few thousand levels deep (``[[[[...``)
ends in a ``RecursionError`` thousands of lines long instead of the one-line error an adapter
file promises. The bound is checked while composing, before that recursion gets deep, and a
real adapter (four levels) is far below it. Tags stay the safe loader's (no ``!!python/...``).
"""

from __future__ import annotations

from typing import Any

import yaml

#: deepest nesting accepted (collections inside collections)
MAX_DEPTH = 50


class TooDeep(yaml.YAMLError):
    """A document nested deeper than :data:`MAX_DEPTH`; ``mark`` is where the bound was crossed."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            raise TooDeep(self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_load(text: str) -> Any:
    """Like ``yaml.safe_load``; raises :class:`TooDeep` (a ``yaml.YAMLError``) past :data:`MAX_DEPTH`."""
    return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: no python tags

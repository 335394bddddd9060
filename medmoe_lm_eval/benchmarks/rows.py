"""Reading JSONL rows and hashing them: the primitives every data path shares.

Errors name the file, the row and the field (``DataError``), so a user fixes a bad file from the
message alone; hashes are content hashes, independent of row order and library versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


class DataError(ValueError):
    """A data file or row that cannot be used: ``<file>: row <n>: field '<f>': <problem>; fix: <fix>``."""

    def __init__(self, file: str | Path, row: int | None, field_name: str | None, problem: str, fix: str) -> None:
        self.file, self.row, self.field, self.problem, self.fix = str(file), row, field_name, problem, fix
        where = str(file) + (f": row {row}" if row is not None else "") + (f": field '{field_name}'" if field_name else "")
        super().__init__(f"{where}: {problem}; fix: {fix}")


def stable_hash(text: str) -> str:
    """A content hash that orders rows the same way on every machine and library version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_order(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: stable_hash(key(r)))


def read_numbered_jsonl(path: Path, hint: str = "") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of a JSON-lines file (blank lines skipped); bad files fail clearly."""
    if not path.is_file():
        raise DataError(path, None, None, "file not found", hint or "create it, one JSON object per line")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    path, lineno, None, f"is not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})", "re-save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, None, f"is not valid JSON ({exc.msg})", "write one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(path, lineno, None, "is not a JSON object", "write one JSON object per line")
            rows.append((lineno, row))
    if not rows:
        raise DataError(path, None, None, "file is empty (no rows)", hint or "add rows, one JSON object per line")
    return rows


def read_jsonl(path: Path, hint: str = "") -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; missing, empty or broken files fail with one line."""
    return [row for _, row in read_numbered_jsonl(path, hint)]

"""Writing result files so that a crash or a second writer never costs an earlier file, and
reading ones made elsewhere.

Results, samples, profiles and routing summaries are the record a user acts on: a half-written
file would read as a corrupt run and a silent overwrite would lose one. Every writer in the
package goes through :func:`write_exclusive` (JSON, JSONL text, or a copy of a staged file).
Every reader of a results folder goes through :func:`loads_data`: such a folder may come from
anywhere, and an integer literal too long for a float would make any later ``float()`` raise.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any


def write_exclusive(path: str | os.PathLike[str], fill: Callable[[IO[bytes]], object]) -> Path:
    """Create ``path`` with the bytes ``fill`` writes, atomically; refuse to replace an existing file.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file is
    then hard-linked to the final name: the link fails if the name exists, so a concurrent writer
    can never be overwritten. Where hard links are not supported, ``os.replace`` after an
    existence check is the fallback.
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target}: already exists; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise FileExistsError(f"{target}: already exists; not overwriting it") from None
        except OSError:  # no hard links on this file system
            if target.exists():
                raise FileExistsError(f"{target}: already exists; not overwriting it") from None
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_json_exclusive(path: str | os.PathLike[str], payload: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """``payload`` as indented JSON (see :func:`write_exclusive`).

    ``default`` serialises objects JSON does not know (lm-eval passes its
    ``handle_non_serializable``); without it NaN is refused rather than written as invalid JSON.
    """
    text = json.dumps(payload, indent=2, default=default, ensure_ascii=False, allow_nan=default is not None) + "\n"
    return write_exclusive(path, lambda fh: fh.write(text.encode("utf-8")))


def write_lines_exclusive(path: str | os.PathLike[str], lines: Iterable[str]) -> Path:
    """Text lines (each ending in its own newline), e.g. a JSONL file (see :func:`write_exclusive`)."""
    return write_exclusive(path, lambda fh: fh.writelines(line.encode("utf-8") for line in lines))


def copy_exclusive(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """A copy of the finished file ``source`` (see :func:`write_exclusive`)."""

    def fill(fh: IO[bytes]) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, fh)

    return write_exclusive(path, fill)


#: digits beyond which an integer literal cannot become a float (about 1.8e308)
_FLOAT_DIGITS = 308


def _bounded_int(literal: str) -> int | float:
    """An integer literal as an int, or as +-inf when no float could hold it."""
    return int(literal) if len(literal.lstrip("-")) <= _FLOAT_DIGITS else float(literal)


def loads_data(text: str) -> Any:
    """``json.loads`` for a file from elsewhere: every number it yields converts to a float."""
    return json.loads(text, parse_int=_bounded_int)

"""Writing result files so that a crash or a second writer never costs an earlier file, and
reading ones made elsewhere.

Results, samples, profiles and routing summaries are the record a user acts on: a half-written
file would read as a corrupt run and a silent overwrite would lose one. Every writer in the
package goes through :func:`write_exclusive` (JSON, JSONL text, or a copy of a staged file).
Every reader of a results folder goes through :func:`loads_data`: such a folder may come from
anywhere, and an integer literal too long for a float would make any later ``float()`` raise, and
a value nested thousands of levels deep would end the reader (or any later recursive walk of it)
in a ``RecursionError``. And such a folder is read only through :func:`entry_problem` and
:func:`open_regular`: regular files inside it, opened without blocking, read up to a size bound.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
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


#: deepest nesting a file from elsewhere may have; lm-eval's results are under 10 levels deep, and
#: code that walks a value recursively (json.dumps, pandas, pickling for a cache) stays far from
#: Python's recursion limit at this depth
MAX_DEPTH = 100


class TooDeep(json.JSONDecodeError):
    """A JSON text nested deeper than :data:`MAX_DEPTH` (a ``JSONDecodeError``, so every reader
    that skips bad JSON skips it too)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels", text, 0)


def loads_data(text: str) -> Any:
    """``json.loads`` for a file from elsewhere: every number it yields converts to a float, and
    nothing is nested deeper than :data:`MAX_DEPTH` (else :class:`TooDeep`)."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise TooDeep(text) from None
    # a text with fewer brackets than the limit cannot be nested that deep: no walk needed
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise TooDeep(text)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


# -- reading files from a folder made elsewhere -----------------------------------------------

#: most bytes read from one JSON file of a results folder (lm-eval's results files are under 5 MB)
MAX_FILE_BYTES = 64 << 20
#: most bytes read from one JSONL log (per-sample, routing), and from one of its lines
MAX_LOG_BYTES = 2 << 30
MAX_LINE_BYTES = 16 << 20


class UnsafeEntry(OSError):
    """A path in a folder from elsewhere that is not a regular file inside it, or is too big: skipped, never opened."""


def entry_problem(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """Why ``path`` must not be read as part of the folder ``root`` (``None`` when it may be).

    Only regular files inside ``root`` are data: a link leading outside (to ``~/.ssh``, say), a
    device (``/dev/zero`` never ends), a named pipe (opening one blocks until a writer comes) or
    a dangling link is not. Nothing is opened here: ``lstat``/``stat`` only.
    """
    real, top = os.path.realpath(path), os.path.realpath(root)
    if real != top and not real.startswith(top.rstrip(os.sep) + os.sep):
        return "a link leading outside the results folder"
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return "a dangling link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"cannot be read ({type(exc).__name__})"
    return None if stat.S_ISREG(mode) else f"not a regular file ({_kind(mode)})"


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def open_regular(path: str | os.PathLike[str], limit: int) -> IO[bytes]:
    """``path`` opened for reading, only if it is a regular file of at most ``limit`` bytes.

    Checked before opening (opening a device can have effects of its own) and again on the open
    descriptor (the name may have changed in between); opened non-blocking, so a named pipe put
    in its place returns at once instead of waiting for a writer. Raises :class:`UnsafeEntry`.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise UnsafeEntry(f"not a regular file ({_kind(mode)})")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeEntry(f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise UnsafeEntry(f"{info.st_size} bytes, more than the {limit} read from one file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bounded(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    with open_regular(path, limit) as fh:
        return fh.read(limit)


def bounded_lines(path: str | os.PathLike[str], limit: int = MAX_LOG_BYTES, line_limit: int = MAX_LINE_BYTES) -> Iterator[str | None]:
    """The lines of a regular file, decoded (bad UTF-8 replaced); ``None`` for a line longer than
    ``line_limit`` bytes, which is skipped unread. Reads no more than the file's size when opened."""
    with open_regular(path, limit) as fh:
        left = os.fstat(fh.fileno()).st_size
        while left > 0:
            line = fh.readline(min(line_limit + 1, left))
            if not line:
                return
            left -= len(line)
            if len(line) <= line_limit:
                yield line.decode("utf-8", errors="replace")
                continue
            while left > 0 and not line.endswith(b"\n"):  # the rest of the long line, a chunk at a time
                line = fh.readline(min(line_limit, left))
                left -= len(line)
                if not line:
                    break
            yield None

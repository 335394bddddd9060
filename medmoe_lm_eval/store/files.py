"""Finding results files in a folder and reading them without trusting them.

A results folder may come from elsewhere: a file that is truncated, not JSON, nested too deep, or
not lm-eval's becomes a :class:`ReadIssue`, never an exception, and values are coerced to numbers
defensively. So does an entry that is not a regular file inside the folder (a link leading out, a
device, a named pipe, a dangling link): it is skipped unopened (``jsonio.entry_problem``), and
every file is opened non-blocking and read up to a size bound (``jsonio.open_regular``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from medmoe_lm_eval.jsonio import MAX_DEPTH, TooDeep, UnsafeEntry, bounded_lines, entry_problem, loads_data, read_bounded
from medmoe_lm_eval.store.records import ReadIssue

T = TypeVar("T")

_SKIP_NAME = re.compile(r"^(profile_|samples_|routing_)")


_RESULT_NAME = re.compile(r"results_?(.*)\.json$")


def find_result_files(root: str | Path) -> list[Path]:
    """Every JSON file below ``root`` that may be a results file (profiles and samples excluded;
    links and other entries that are not regular files are listed too: :func:`load_json` says why
    it skips them)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / n for n in sorted(filenames) if n.endswith(".json") and not _SKIP_NAME.match(n))
    return out


def fingerprint(root: str | Path) -> tuple[str, int, float]:
    """(path, JSON/JSONL file count, newest mtime) of the folder: a cheap cache key for the app.

    Results, profiles and routing logs all count, so a new or rewritten run invalidates the cache.
    """
    count, newest = 0, 0.0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith((".json", ".jsonl")):
                count += 1
                with contextlib.suppress(OSError):  # the entry's own time: a dangling link must not fail the board
                    newest = max(newest, os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_mtime)
    return (str(Path(root).resolve()), count, newest)


def read_data_file(path: Path, root: Path) -> Any:
    """The JSON in ``path``, a regular file inside ``root`` (else :class:`UnsafeEntry`); raises
    ``OSError``, ``UnicodeDecodeError`` or ``json.JSONDecodeError`` (:class:`TooDeep` among them)."""
    problem = entry_problem(path, root)
    if problem is not None:
        raise UnsafeEntry(problem)
    return loads_data(read_bounded(path).decode("utf-8"))


def load_json(path: Path, root: Path) -> tuple[dict[str, Any] | None, ReadIssue | None]:
    """The lm-eval results in ``path``, or the one-line issue that says why it was skipped (a bad file never raises)."""
    try:
        data = read_data_file(path, root)
    except UnsafeEntry as exc:
        return None, ReadIssue(str(path), f"{exc}; skipped")
    except TooDeep:
        return None, ReadIssue(str(path), f"nested deeper than {MAX_DEPTH} levels; skipped")
    except (OSError, UnicodeDecodeError) as exc:
        return None, ReadIssue(str(path), f"cannot read ({type(exc).__name__}); skipped")
    except json.JSONDecodeError as exc:
        return None, ReadIssue(str(path), f"not valid JSON, truncated or corrupt (line {exc.lineno}, column {exc.colno}: {exc.msg}); skipped")
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        return None, ReadIssue(str(path), "not an lm-eval results file (no 'results' mapping); ignored", "info")
    return data, None


def read_jsonl(path: str | Path, parse: Callable[[str], T | None], log: str, line: str, issues: list[ReadIssue]) -> list[T]:
    """What ``parse`` makes of each line of a JSONL file; lines it rejects (``None`` or a
    ``ValueError``) are counted in one issue, an unreadable file is one issue, never an error.

    ``log`` and ``line`` name the file and its lines in those issues ("per-sample log", "per-sample").
    """
    out: list[T] = []
    bad = 0
    try:
        for text in bounded_lines(path):  # a line too long to read is None: malformed
            try:
                item = None if text is None else parse(text)
            except ValueError:  # json.JSONDecodeError and TooDeep among them
                item = None
            if item is None:
                bad += 1
            else:
                out.append(item)
    except UnsafeEntry as exc:
        issues.append(ReadIssue(str(path), f"{log} skipped: {exc}"))
    except OSError as exc:
        issues.append(ReadIssue(str(path), f"{log} unreadable ({type(exc).__name__})"))
    if bad:
        issues.append(ReadIssue(str(path), f"{bad} malformed {line} line(s) skipped"))
    return out


def run_date(data: Mapping[str, Any], path: Path) -> pd.Timestamp:
    """``date`` (a Unix time in lm-eval 0.4), else the file name's stamp, else the file's mtime."""
    raw = data.get("date")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return pd.Timestamp(float(raw), unit="s", tz="UTC")
    match = _RESULT_NAME.search(path.name)
    if match and match.group(1):
        stamp = match.group(1)
        date, _, clock = stamp.partition("T")
        try:
            return pd.Timestamp(f"{date}T{clock.replace('-', ':', 2)}", tz="UTC")
        except ValueError:
            pass
    return pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")

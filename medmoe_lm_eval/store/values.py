"""Values read from a results file, taken as what they claim only when they are: a mapping, a
name, a number. Every reader of the store's files uses these, so they live apart from the file
walking (``files``) and the run keys (``run_key``) that both need them.
"""

from __future__ import annotations

import math
from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    """A name or label from a file, or ``None`` where it holds something else (a list, a table)."""
    return value if isinstance(value, str) else None


def number(value: Any) -> float:
    """A float, or NaN for lm-eval's ``"N/A"``, None, lists and other non-numbers (and for an
    integer no float can hold: ``loads_data`` already reads those as infinity)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan

"""Numbers written to the precision their 95% interval supports.

A score of 0.4833 with an interval of [0.1212, 0.8454] reads as if the fourth decimal meant
something; it does not. The rule here: show the interval's half-width to two significant digits
and the value and bounds to the same decimal place, so ``0.48 [0.12, 0.85]`` (half-width 0.36)
and ``0.4833 [0.4790, 0.4876]`` (half-width 0.0043). A figure without an interval keeps a fixed
number of decimals (or significant digits) chosen by its page.
"""

from __future__ import annotations

import math
import numbers

#: decimals for a figure with no usable interval (a 0-1 score to the tenth of a point)
DEFAULT_DECIMALS = 3
#: more decimals than this are never shown, however narrow the interval
MAX_DECIMALS = 6


def _number(value: object) -> float | None:
    """A finite float, or None for a missing value (None, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars included
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def interval_decimals(low: object, high: object, default: int = DEFAULT_DECIMALS) -> int:
    """Decimal places that show the half-width of ``[low, high]`` to two significant digits.

    ``default`` when the interval is missing or has no width (nothing to read a precision from).
    """
    lo, hi = _number(low), _number(high)
    if lo is None or hi is None or hi <= lo:
        return default
    return max(0, min(MAX_DECIMALS, 1 - math.floor(math.log10((hi - lo) / 2.0))))


def fixed(value: object, decimals: int = DEFAULT_DECIMALS, signed: bool = False, unit: str = "") -> str:
    """``value`` at ``decimals`` places ('+' in front when ``signed``), '—' when missing."""
    number = _number(value)
    if number is None:
        return "—"
    rounded = round(number, decimals) or 0.0  # never "-0.00"
    return f"{rounded:{'+' if signed else ''}.{decimals}f} {unit}".strip()


def with_interval(value: object, low: object, high: object, signed: bool = False, unit: str = "", default: int = DEFAULT_DECIMALS) -> str:
    """``"0.48 [0.12, 0.85]"``: value and 95% bounds at the precision of the interval; the value
    alone at ``default`` places when there is no interval; '—' when the value is missing."""
    if _number(value) is None:
        return "—"
    if _number(low) is None or _number(high) is None:
        return fixed(value, default, signed, unit)
    places = interval_decimals(low, high, default)
    bounds = f"[{fixed(low, places, signed)}, {fixed(high, places, signed)}]"
    return f"{fixed(value, places, signed)} {bounds} {unit}".strip()


def significant(value: object, digits: int = 3, unit: str = "") -> str:
    """A single measurement (no interval) to ``digits`` significant digits, '—' when missing."""
    number = _number(value)
    return "—" if number is None else f"{number:.{digits}g} {unit}".strip()

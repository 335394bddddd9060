"""Numbers to the precision their interval supports: hand-worked cases of the two-digit half-width rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medmoe_lm_eval.analysis.precision import fixed, interval_decimals, significant, with_interval


@pytest.mark.parametrize(
    ("low", "high", "decimals"),
    [
        (0.1212, 0.8454, 2),  # half-width 0.3621: 0.36 -> 2 places
        (0.4790, 0.4876, 4),  # half-width 0.0043 -> 4 places
        (0.05, 0.15, 3),  # half-width 0.05: two digits are 0.050 -> 3 places
        (100.0, 150.0, 0),  # half-width 25 ms -> whole milliseconds
        (10.0, 12.0, 1),  # half-width 1.0 -> 1.0: one place
        (1e-12, 2e-12, 6),  # capped: never more than 6 places
        (0.5, 0.5, 3),  # no width: the default
        (math.nan, 0.5, 3),  # no interval: the default
    ],
)
def test_interval_decimals_by_hand(low, high, decimals):
    assert interval_decimals(low, high) == decimals


def test_with_interval_by_hand():
    assert with_interval(0.4833, 0.1212, 0.8454) == "0.48 [0.12, 0.85]"
    assert with_interval(0.4833, 0.4790, 0.4876) == "0.4833 [0.4790, 0.4876]"
    assert with_interval(0.1667, -0.3333, 0.6667, signed=True) == "+0.17 [-0.33, +0.67]"  # half-width 0.5
    assert with_interval(-0.001, -0.3, 0.2, signed=True) == "+0.00 [-0.30, +0.20]"  # no "-0.00"
    assert with_interval(123.4, 100.0, 150.0, unit="ms") == "123 [100, 150] ms"
    assert with_interval(np.float64(0.5), math.nan, 1.0) == "0.500"  # no interval: 3 places
    assert with_interval(None, 0.0, 1.0) == "—" and with_interval(math.inf, 0.0, 1.0) == "—"


def test_fixed_and_significant():
    assert fixed(np.int64(3), 0) == "3" and fixed(-0.0004) == "0.000" and fixed(0.25, 1, signed=True) == "+0.2"
    assert fixed(None) == "—" and fixed("0.5") == "—" and fixed(True) == "—"  # not a number: missing, never a guess
    assert significant(1.234e9) == "1.23e+09" and significant(0.012345, unit="J") == "0.0123 J" and significant(math.nan) == "—"

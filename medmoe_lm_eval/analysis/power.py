"""Power, sample size and minimum detectable effect (MDE) of a paired comparison.

"No significant difference" means little unless the run could have seen a difference that
matters: 300 items cannot tell a 2-point gap from noise. Two candidates scored on the same items
disagree on a share ``d`` of them (the discordance rate); only those items carry information
about ``b - a`` (Miller 2024, "Adding Error Bars to Evals"). With ``k = (z_{1-a/2} + z_{1-b})^2``
and the normal approximation the paired test needs

    n = k (d - delta^2) / delta^2        items to detect a true difference ``delta``,

so the MDE at ``n`` items solves ``delta^2 (n + k) = k d``. Two unpaired samples need
``k (p1 q1 + p2 q2) / delta^2`` items each. For scores that are not right/wrong the variance of
the per-item difference takes the place of ``d - delta^2``: MDE = sqrt(k) x the standard error of
the mean difference (clustered when the items come in clusters, :mod:`.clusters`).
"""

from __future__ import annotations

import math

from scipy.stats import norm

ALPHA = 0.05
POWER = 0.8
#: the difference ``power_note`` speaks about: 2 points of accuracy
NOTE_DELTA = 0.02


def z_total(alpha: float = ALPHA, power: float = POWER) -> float:
    """``z_{1-alpha/2} + z_{power}``: the two-sided test's critical value plus the power quantile."""
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must lie strictly between 0 and 1 (got {alpha}, {power})")
    return float(norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power))


def _check_paired(delta: float, discordance: float) -> None:
    if not 0.0 < abs(delta) <= 1.0:
        raise ValueError(f"delta must be a difference between 0 and 1 (got {delta})")
    if not abs(delta) < discordance <= 1.0:
        raise ValueError(
            f"discordance {discordance} cannot produce a difference of {abs(delta)}: the share of items the two answer differently "
            "is at least the difference; fix: pass a discordance above delta (and at most 1)"
        )


def paired_n(delta: float, discordance: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Items a paired test of 0/1 outcomes needs to detect ``delta`` with ``power`` (rounded up)."""
    _check_paired(delta, discordance)
    return math.ceil(z_total(alpha, power) ** 2 * (discordance - delta**2) / delta**2)


def unpaired_n(delta: float, accuracy: float = 0.5, alpha: float = ALPHA, power: float = POWER) -> int:
    """Items per candidate two independent samples need to detect ``delta`` from ``accuracy``.

    The second accuracy is ``accuracy + delta`` (``accuracy - delta`` when that would pass 1);
    ``accuracy = 0.5`` is the worst case.
    """
    if not 0.0 < abs(delta) < 1.0 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"need 0 < delta < 1 and 0 <= accuracy <= 1 (got {delta}, {accuracy})")
    other = accuracy + abs(delta) if accuracy + abs(delta) <= 1.0 else accuracy - abs(delta)
    variance = accuracy * (1 - accuracy) + other * (1 - other)
    return math.ceil(z_total(alpha, power) ** 2 * variance / delta**2)


def mde_binary(n: int, discordance: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference of 0/1 outcomes detected with ``power`` at ``n`` paired items.

    A true difference ``delta`` implies a discordance of at least ``delta``, so the MDE is never
    below the one with every discordant pair going one way (``d = delta``): ``k / (n + k)``. That
    floor keeps two runs that agreed everywhere (d = 0) from claiming an MDE of 0.
    """
    if n <= 0 or not 0.0 <= discordance <= 1.0:
        return math.nan
    k = z_total(alpha, power) ** 2
    return max(math.sqrt(k * discordance / (n + k)), k / (n + k))


def mde_from_se(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """MDE from the standard error of the (mean) difference: ``(z_{1-a/2} + z_b) x se``."""
    return z_total(alpha, power) * se if math.isfinite(se) and se >= 0 else math.nan


def power_binary(delta: float, n: int, discordance: float, alpha: float = ALPHA) -> float:
    """Chance the paired test detects a true ``delta`` at ``n`` items and discordance ``discordance``."""
    if n <= 0 or discordance <= delta**2:
        return math.nan
    return float(norm.cdf(abs(delta) * math.sqrt(n / (discordance - delta**2)) - norm.ppf(1.0 - alpha / 2.0)))


def power_from_se(delta: float, se: float, alpha: float = ALPHA) -> float:
    """Chance a two-sided test at ``alpha`` detects a true ``delta`` when the difference's SE is ``se``."""
    if not math.isfinite(se) or se <= 0:
        return math.nan
    return float(norm.cdf(abs(delta) / se - norm.ppf(1.0 - alpha / 2.0)))


def power_note(miss: float, n: int, delta: float = NOTE_DELTA, percent: bool = False) -> str:
    """``"a difference of 2 points would go unseen 50% of the time at n = 300"``; empty when unknown."""
    if not math.isfinite(miss) or n <= 0:
        return ""
    size = f"{delta * (1 if percent else 100):g} points"
    return f"a difference of {size} would go unseen {miss:.0%} of the time at n = {n:,}"

"""Is a quantized copy good enough? A non-inferiority verdict against its parent, at a margin the user sets.

"No significant difference" is not "as good": with few items every copy looks fine. The question
a deployer asks is whether the copy loses more than ``margin`` (default one point of accuracy),
answered from the 95% interval of ``copy - parent`` on the same items:

* "non-inferior" when the interval's lower bound is above ``-margin`` (the loss is smaller than
  the margin, with the usual 2.5% one-sided error at the margin);
  for right/wrong scores the interval is Agresti and Min's (2005) for matched proportions (Wald
  after adding 1/2 to each cell of the 2x2 table), because a bootstrap of a copy that never flipped
  collapses to [0, 0] and would call one identical answer "non-inferior"; with clusters it is
  widened to cover the whole-cluster bootstrap interval too;
* "inferior" when its upper bound is below ``-margin``;
* otherwise "cannot tell", with the number of items that would settle it with 80% power if the
  true difference is the observed one: ``plan``'s paired formula with the distance to the margin
  as the effect, ``k (d - delta^2) / (delta + margin)^2`` at the observed discordance ``d`` (at
  least 3/n, the rule of three, when no item flipped), or,
  for other scores and clustered items, the ``n`` at which the standard error shrinks enough
  (``n x (sqrt(k) x se / (delta + margin))^2``); ``k = (z_{0.975} + z_{0.8})^2``.

Quantization studies judge copies this way (Red Hat, "Give Me BF16 or Give Me Death", 2024:
recovery of at least 99% of the parent's accuracy; llama.cpp's ``--kl-divergence`` reports how
often the top answer stays the same).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy.stats import norm

from medmoe_lm_eval.analysis.power import z_total

DEFAULT_MARGIN = 0.01
Verdict = Literal["non-inferior", "inferior", "cannot tell"]


def matched_interval(flips_down: np.ndarray | int, flips_up: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Agresti-Min interval of ``(flips_up - flips_down) / n`` for paired 0/1 outcomes (vectorised).

    ``flips_down``: items the parent got right and the copy wrong; ``flips_up``: the reverse.
    Half an item is added to each of the four cells, then the Wald interval is taken.
    """
    b, c, total = (np.asarray(v, dtype=float) + a for v, a in ((flips_down, 0.5), (flips_up, 0.5), (n, 2.0)))
    delta = (c - b) / total
    se = np.sqrt(np.maximum((b + c) - (c - b) ** 2 / total, 0.0)) / total
    half = norm.ppf(0.5 + confidence / 2.0) * se
    return np.clip(delta - half, -1.0, 1.0), np.clip(delta + half, -1.0, 1.0)


def verdict(ci_low: float, ci_high: float, margin: float = DEFAULT_MARGIN) -> Verdict:
    """The verdict from the 95% interval of ``copy - parent`` (NaN bounds: "cannot tell")."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (got {margin})")
    if math.isfinite(ci_low) and ci_low > -margin:
        return "non-inferior"
    if math.isfinite(ci_high) and ci_high < -margin:
        return "inferior"
    return "cannot tell"


def n_to_settle(delta: float, n: int, margin: float, discordance: float = math.nan, se: float = math.nan) -> int | None:
    """Items that would settle a "cannot tell" with 80% power if the true difference is the observed one.

    None when the observed difference sits exactly on the margin (no number of items settles it)
    or nothing is known about the spread.
    """
    distance = abs(delta + margin)
    if distance == 0 or n <= 0:
        return None
    if math.isfinite(discordance):
        discordance = max(discordance, 3.0 / n)  # no flips seen in n items: up to 3/n at 95% (the rule of three)
    if math.isfinite(discordance) and discordance > delta**2:
        return max(math.ceil(z_total() ** 2 * (discordance - delta**2) / distance**2), n + 1)
    if math.isfinite(se) and se > 0:
        return max(math.ceil(n * (z_total() * se / distance) ** 2), n + 1)
    return None


def verdict_text(value: Verdict, n: int, settle: int | None) -> str:
    """``"cannot tell with 300 items (about 2,100 would settle it)"``; the verdict itself otherwise."""
    if value != "cannot tell":
        return value
    return f"cannot tell with {n:,} items" + (f" (about {settle:,} would settle it)" if settle else "")

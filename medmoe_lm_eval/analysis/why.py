"""One short sentence per ranked candidate: limits met or failed, then what carried its score."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from medmoe_lm_eval.analysis.use_cases import FIGURES, UseCase, format_value


def explain(use_case: UseCase, weights: Mapping[str, float], figures: pd.Series, parts: pd.Series | None, meets: bool) -> str:
    """``"meets <limits>; carried by <figure> (<part> of <score>)"`` or ``"fails <limit> (<value>); ..."``.

    ``parts`` are the weighted win rates that sum to the score (accuracy = the quality win rate);
    ``None`` for a candidate outside the limits, which is not scored.
    """
    phrases: list[str] = []
    failed = [lim for lim in use_case.limits if not lim.holds(figures[FIGURES[lim.figure].column])]
    shown = failed if not meets else list(use_case.limits)
    for lim in shown:
        fig = FIGURES[lim.figure]
        measured = figures[fig.column]
        status = "not measured" if pd.isna(measured) else format_value(fig, float(measured))
        phrases.append(f"{lim.describe()} ({status})")
    head = ("fails " if not meets else "meets ") + ", ".join(phrases) if phrases else "no hard limits"
    missing = [FIGURES[k].label for k in weights if k != "accuracy" and pd.isna(figures[FIGURES[k].column])]
    if parts is None or not meets:
        tail = "not scored: win rates are among the candidates within every limit"
    elif parts.sum() > 0:
        top = str(parts.idxmax())
        tail = f"carried by {FIGURES[top].label} ({parts[top]:.2f} of {parts.sum():.2f})"
    else:
        tail = "beats no other candidate on any weighted figure"
    if missing:
        tail += f"; no {', '.join(missing)} measured (counted as worst)"
    return f"{head}; {tail}"

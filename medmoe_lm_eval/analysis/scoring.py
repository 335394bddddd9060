"""A use case's score pieces among the candidates within its limits: measured figures and calibration.

Measured figures (latency, memory, energy, throughput) become win rates once, with differences
inside their noise counted as ties (:mod:`.tolerance`); each tie between unequal values is said in
the candidate's notes. Calibration (ECE) is estimated from the per-item records on the paired
documents, so each bootstrap draw recomputes it (:mod:`.rank_intervals`); a run without them
keeps lm-eval's aggregate in every draw, with a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from medmoe_lm_eval.analysis.comparable import TaskEvidence
from medmoe_lm_eval.analysis.latency import RESAMPLED
from medmoe_lm_eval.analysis.tolerance import TOLERANCE, beats, noise_ties, tolerant_win_rates
from medmoe_lm_eval.analysis.use_cases import FIGURES

#: figures whose uncertainty the bootstrap carries (not a fixed win rate)
DRAWN = frozenset({"accuracy", "calibration"})


def fixed_parts(figures: pd.DataFrame, weights: Mapping[str, float], notes: dict[str, list[str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """Weighted win rates (columns: figure keys) of the measured figures among ``figures``' rows,
    ties inside the noise counted half, and their weighted pairwise wins (C, C) for the rank
    comparisons; the ties between unequal values go to ``notes``."""
    total = sum(weights.values())
    parts = pd.DataFrame(index=figures.index)
    preference = np.zeros((len(figures), len(figures)))
    names = list(figures.index)
    for key, weight in weights.items():
        if key in DRAWN:
            continue
        fig = FIGURES[key]
        values = figures[fig.column].to_numpy(dtype=float)
        low = figures.get(f"{fig.column}_low")
        high = figures.get(f"{fig.column}_high")
        bounds = (low.to_numpy(dtype=float), high.to_numpy(dtype=float)) if fig.column in RESAMPLED and low is not None and high is not None else (None, None)
        tol = TOLERANCE.get(key, 0.0)
        parts[key] = tolerant_win_rates(values, fig.higher_is_better, tol, *bounds) * (weight / total)
        preference += beats(values, fig.higher_is_better, tol, *bounds) * (weight / total)
        ties = noise_ties(values, fig.higher_is_better, tol, *bounds)
        for i, name in enumerate(names):
            if ties[i].any():
                how = "their 95% intervals overlap" if bounds[0] is not None and np.isfinite(bounds[0][i]) else f"within {tol:.0%} of each other"
                others = ", ".join(names[j] for j in np.flatnonzero(ties[i]))
                notes.setdefault(name, []).append(f"{fig.label}: counted as a tie with {others} ({how})")
    return parts, preference


def item_ece(evidence: Mapping[str, TaskEvidence], tasks: Sequence[str], candidates: Sequence[str]) -> tuple[pd.Series, set[str]]:
    """Each candidate's mean ECE over ``tasks`` from the paired documents' records, and the
    candidates that had them for every such task (the others: NaN)."""
    sums = pd.Series(0.0, index=list(candidates))
    have = pd.Series(0, index=list(candidates))
    for task in tasks:
        ev = evidence.get(task)
        if ev is None or ev.ece_gaps is None:
            continue
        per = np.abs(ev.ece_gaps.sum(axis=0)).sum(axis=1) / len(ev.raw)
        cols = [c for c in ev.raw.columns if c in sums.index]
        sums[cols] += per[[list(ev.raw.columns).index(c) for c in cols]]
        have[cols] += 1
    complete = {c for c in candidates if have[c] == len(tasks) and len(tasks)}
    return (sums / have.where(have > 0)).where(have == len(tasks)), complete


def ece_figure(evidence: Mapping[str, TaskEvidence], tasks: Sequence[str], aggregate: pd.Series, notes: dict[str, list[str]]) -> tuple[pd.Series, set[str]]:
    """ECE per candidate: from the records where every weighed task has them, else lm-eval's aggregate (noted)."""
    from_items, complete = item_ece(evidence, tasks, list(aggregate.index))
    for cand in aggregate.index:
        if cand not in complete and pd.notna(aggregate[cand]):
            notes.setdefault(cand, []).append("calibration from lm-eval's aggregate ECE (no per-item records): the same in every draw")
    return from_items.where(from_items.notna(), aggregate), complete

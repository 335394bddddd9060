"""Two candidates compared task by task: what ``medmoe compare`` prints and the Compare page draws.

Per task both ran: the task's main metric for A and B on the documents both answered (matched on
doc_id and doc_hash), ``delta = b - a`` with its 95% paired bootstrap interval, the paired test's
p-value and the Holm-adjusted one across this comparison's tasks (:mod:`.paired`). A task where
either run kept no per-sample log still shows, with lm-eval's aggregate values, an unpaired
interval and a two-sided normal p-value from their standard errors (in Holm's correction with the
others), and says that paired comparisons need ``--log_samples``. Runs whose task settings differ
(rows, shots, data, limit) say so in the task's note.

Every row also says what the run could have seen (:mod:`.power`): ``mde``, the smallest true
difference the test detects with 80% power (from the discordance rate for right/wrong scores,
else from the standard error of the difference), and ``power_note``, how often a 2-point
difference would go unseen. When the task names a cluster field the items' clusters are
resampled whole (:mod:`.clusters`) and ``n_clusters`` counts them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd
from scipy import stats

from medmoe_lm_eval.analysis.clusters import item_clusters
from medmoe_lm_eval.analysis.paired import CONFIDENCE, PairedDifference, discordance, holm, paired_difference
from medmoe_lm_eval.analysis.power import NOTE_DELTA, mde_binary, mde_from_se, power_binary, power_from_se, power_note
from medmoe_lm_eval.analysis.quality import main_metric_rows, task_matrices
from medmoe_lm_eval.benchmarks.metric_directions import PERCENT_SCALE_METRICS
from medmoe_lm_eval.store.records import ResultsSet
from medmoe_lm_eval.store.run_key import key_reasons
from medmoe_lm_eval.store.samples import load_items

NEEDS_SAMPLES = "paired comparisons need --log_samples; interval from lm-eval's stderr, unpaired"
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class TaskComparison:
    """One task's row (the JSON fields of ``medmoe compare --json``, plus test and note)."""

    task: str
    metric: str
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    n_paired: int
    test: str
    note: str = ""
    mde: float = math.nan  #: smallest true difference detected with 80% power (the scale of delta)
    power_note: str = ""  #: how often a 2-point difference would go unseen at this n
    n_clusters: int = 0  #: clusters resampled whole (0: items treated as independent)
    discordance: float = math.nan  #: share of paired items the two answered differently (0/1 scores)

    @property
    def significant(self) -> bool:
        """The interval excludes 0 and, where a test ran, Holm's p is below 0.05."""
        outside = not (self.ci_low <= 0.0 <= self.ci_high) if math.isfinite(self.ci_low) else False
        return outside and (not math.isfinite(self.p_holm) or self.p_holm < 1 - CONFIDENCE)

    def verdict(self, name_a: str, name_b: str) -> str:
        if not math.isfinite(self.ci_low):
            return "no interval"
        if self.ci_low <= 0.0 <= self.ci_high:
            return "no significant difference"
        if not self.significant:
            return "not significant after Holm"
        return f"{name_b if self.delta > 0 else name_a} higher"


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    tasks: tuple[TaskComparison, ...]
    only_a: tuple[str, ...] = ()
    only_b: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        rows = [{k: clean(v) for k, v in asdict(t).items()} | {"verdict": t.verdict(self.a, self.b)} for t in self.tasks]
        return {
            "a": self.a,
            "b": self.b,
            "confidence": CONFIDENCE,
            "tasks": rows,
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "notes": list(self.notes),
        }

    def table(self) -> pd.DataFrame:
        """The rows as a frame with a verdict column (what the terminal and the page show)."""
        frame = pd.DataFrame([asdict(t) for t in self.tasks])
        if frame.empty:
            return pd.DataFrame(columns=[*TaskComparison.__dataclass_fields__, "verdict"])
        return frame.assign(verdict=[t.verdict(self.a, self.b) for t in self.tasks])


def _unpaired(task: str, ra: pd.Series, rb: pd.Series) -> TaskComparison:
    """Aggregates only: ``delta`` with a normal interval and a two-sided normal p-value from the
    two standard errors (independent samples), which enters Holm's correction with the others."""
    delta = float(rb["accuracy"] - ra["accuracy"])
    scale = 100.0 if ra["metric"] in PERCENT_SCALE_METRICS else 1.0
    se = math.sqrt(float(ra["stderr"]) ** 2 + float(rb["stderr"]) ** 2) / scale
    half = Z_95 * se if math.isfinite(se) else math.nan
    p = 2.0 * float(stats.norm.sf(abs(delta) / se)) if math.isfinite(se) and se > 0 else (1.0 if delta == 0 and se == 0 else math.nan)
    test = "normal (unpaired)" if math.isfinite(p) else "none"
    n = int(min(float(ra.get("n_samples", math.nan)), float(rb.get("n_samples", math.nan)))) if _finite(ra.get("n_samples"), rb.get("n_samples")) else 0
    return TaskComparison(
        task, str(ra["metric"]), float(ra["accuracy"]), float(rb["accuracy"]), delta, delta - half, delta + half, p, math.nan, 0, test, NEEDS_SAMPLES,
        mde=mde_from_se(se), power_note=power_note(1.0 - power_from_se(NOTE_DELTA, se), n),
    )  # fmt: skip


def _finite(*values: object) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _paired_row(task: str, metric: str, x: pd.Series, y: pd.Series, clusters: pd.Series | None) -> TaskComparison:
    """One task's paired row with its MDE: the discordance formula for 0/1 scores on independent items, the SE otherwise."""
    diff: PairedDifference = paired_difference(x.to_numpy(), y.to_numpy(), clusters=None if clusters is None else clusters.to_numpy())
    d = discordance(x.to_numpy(), y.to_numpy())
    scale = 100.0 if metric in PERCENT_SCALE_METRICS else 1.0
    if math.isfinite(d) and not diff.n_clusters:
        mde, miss = mde_binary(diff.n_paired, d), 1.0 - power_binary(NOTE_DELTA, diff.n_paired, d)
    else:
        mde, miss = mde_from_se(diff.se), 1.0 - power_from_se(NOTE_DELTA * scale, diff.se)
    note = power_note(miss, diff.n_paired, NOTE_DELTA * scale, percent=scale != 1.0)
    return TaskComparison(
        task, metric, diff.a, diff.b, diff.delta, diff.ci_low, diff.ci_high, diff.p_value, math.nan, diff.n_paired, diff.test,
        mde=mde, power_note=note, n_clusters=diff.n_clusters, discordance=d,
    )  # fmt: skip


def _key_note(results: ResultsSet, ra: pd.Series, rb: pd.Series) -> str:
    """What differs between the two runs' task settings (limit, data, shots), if anything."""
    ka, kb = results.keys.get(str(ra.get("run_key"))), results.keys.get(str(rb.get("run_key")))
    if ka is None or kb is None or ka.task_part() == kb.task_part():
        return ""
    # the adapter always differs between two candidates: compare the task settings alone, so that
    # "adapter changed" never hides "different rows" (key_reasons says that only when nothing else differs)
    reasons = [r for r in key_reasons(dataclasses.replace(kb, adapter=ka.adapter), ka) if r != "another comparability key"]
    return f"runs differ ({', '.join(reasons)})" if reasons else ""


def compare(results: ResultsSet, a: str, b: str) -> Comparison:
    """Compare candidates ``a`` and ``b`` on every task both have on the board."""
    main = main_metric_rows(results.frame[results.frame["candidate"].isin([a, b])])
    per = {c: main[main["candidate"] == c].set_index("task") for c in (a, b)}
    shared = sorted(set(per[a].index) & set(per[b].index))
    items, issues = load_items(results, [a, b], shared)
    matrices = task_matrices(items, main[main["task"].isin(shared)])
    rows = []
    for task in shared:
        ra, rb = per[a].loc[task], per[b].loc[task]
        note = _key_note(results, ra, rb)
        m = matrices.get(task)
        if m is None or a not in m.raw or b not in m.raw or a == b:
            row = _unpaired(task, ra, rb)
        else:
            row = _paired_row(task, m.metric, m.raw[a], m.raw[b], item_clusters(items, task, m.raw.index))
        rows.append(replace(row, note="; ".join(n for n in (row.note, note) if n)))
    adjusted = holm([r.p_value for r in rows])
    rows = [replace(r, p_holm=p) for r, p in zip(rows, adjusted, strict=True)]
    return Comparison(
        a, b, tuple(rows), tuple(sorted(set(per[a].index) - set(shared))), tuple(sorted(set(per[b].index) - set(shared))), tuple(str(i) for i in issues)
    )

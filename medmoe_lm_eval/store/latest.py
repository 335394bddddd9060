"""Which run stands for a candidate's task: "latest wins" only inside one comparability key.

Re-running a candidate under the same key (same adapter, task, data, limit, ...) replaces the
older run: the newest wins and the older one stays in ``history``. Runs under a different key are
never merged with it: for each candidate and task one key is chosen to stand on the board (real
data before a sample, a full run before a limited one, more rows before fewer, then the newest),
and the newest run of every other key is shown apart with the reason (``variant``, e.g.
``"limit 5"``). So a ``--limit 5`` smoke run made after a full run leaves the full run in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from medmoe_lm_eval.store.records import ReadIssue
from medmoe_lm_eval.store.run_key import RunKey, key_reasons, preference


@dataclass(frozen=True)
class Standing:
    """Per history row: on the board (``latest``), newest of its own key, and why it stands apart."""

    latest: pd.Series
    newest_in_key: pd.Series
    variant: pd.Series


def _primary_keys(runs: pd.DataFrame, keys: dict[str, RunKey]) -> dict[tuple[str, str], str]:
    """(candidate, task) -> the key that stands for it on the board."""
    newest = runs.groupby(["candidate", "task", "run_key"], sort=False)["date"].max().reset_index()
    newest["_pref"] = newest["run_key"].map(lambda k: preference(keys[k]))
    newest = newest.sort_values(["_pref", "date"], ascending=[True, False], kind="stable")
    first = newest.drop_duplicates(["candidate", "task"], keep="first")
    return {(c, t): k for c, t, k in first[["candidate", "task", "run_key"]].itertuples(index=False)}


def standing(history: pd.DataFrame, keys: dict[str, RunKey], issues: list[ReadIssue]) -> Standing:
    """Mark every history row; add one note per candidate with superseded or set-apart runs."""
    runs = history[["candidate", "task", "run_key", "run_id", "date"]].drop_duplicates()
    order = runs.sort_values(["date", "run_id"], ascending=[False, False], kind="stable")
    newest_run = order.drop_duplicates(["candidate", "task", "run_key"], keep="first")
    newest_ids = set(zip(newest_run["candidate"], newest_run["task"], newest_run["run_key"], newest_run["run_id"], strict=True))
    primary = _primary_keys(runs, keys)
    triples = list(zip(history["candidate"], history["task"], history["run_key"], history["run_id"], strict=True))
    newest_in_key = pd.Series([t in newest_ids for t in triples], index=history.index)
    on_primary = pd.Series([primary[(c, t)] == k for c, t, k, _ in triples], index=history.index)
    reasons: dict[tuple[str, str], str] = {}
    for c, t, k, _ in triples:
        if primary[(c, t)] != k and (k, primary[(c, t)]) not in reasons:
            reasons[(k, primary[(c, t)])] = ", ".join(key_reasons(keys[k], keys[primary[(c, t)]]))
    variant = pd.Series([reasons.get((k, primary[(c, t)]), "") for c, t, k, _ in triples], index=history.index)
    latest = newest_in_key & on_primary
    _notes(history, latest, newest_in_key, variant, issues)
    return Standing(latest, newest_in_key, variant)


def _notes(history: pd.DataFrame, latest: pd.Series, newest_in_key: pd.Series, variant: pd.Series, issues: list[ReadIssue]) -> None:
    older = history.loc[~newest_in_key, ["candidate", "task", "run_id"]].drop_duplicates()
    for cand, group in older.groupby("candidate", sort=True):
        when = history.loc[latest & (history["candidate"] == cand), "date"].max()
        stamp = f"{when:%Y-%m-%d %H:%M}" if pd.notna(when) else "n/a"
        issues.append(
            ReadIssue(
                str(cand),
                f"{group['run_id'].nunique()} older run(s) on {group['task'].nunique()} task(s) superseded; showing the latest ({stamp}), older runs stay in history",
                "info",
            )
        )
    mask = newest_in_key & ~latest
    apart = history.loc[mask, ["candidate", "task"]].assign(variant=variant[mask]).drop_duplicates()
    for cand, group in apart.groupby("candidate", sort=True):
        why = "; ".join(f"{t}: {v}" for t, v in sorted(set(zip(group["task"], group["variant"], strict=True))))
        issues.append(ReadIssue(str(cand), f"runs under another comparability key are shown apart, not merged ({why})", "info"))

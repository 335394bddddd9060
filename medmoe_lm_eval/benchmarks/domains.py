"""Which domain a task belongs to: what the oracle router routes on and what routing is judged by.

Our own tasks are rows of the benchmark table (``task_table.TASKS``); lm-eval's built-in
medical, legal and code tasks are known by name prefix (``task_table.BUILTIN_PREFIXES``); an
adapter can add or override entries with ``router.task_domains``. Group names never reach the
model (requests carry subtask names). Nothing here reads a task YAML: the table is checked
against the YAMLs by the test suite, not at run time.
"""

from __future__ import annotations

from collections.abc import Mapping

from medmoe_lm_eval.benchmarks.task_table import BUILTIN_PREFIXES, TASKS

DOMAINS = ("biomedical", "legal", "code")


def task_domain(task: str | None, overrides: Mapping[str, str] | None = None) -> str | None:
    """The domain of ``task``: adapter overrides, then the benchmark table, then built-in prefixes."""
    if not task:
        return None
    if overrides and task in overrides:
        return overrides[task]
    if task in TASKS:
        return TASKS[task].domain
    for table in (overrides or {}, BUILTIN_PREFIXES):
        matches = [p for p in table if task.startswith(p)]
        if matches:
            return table[max(matches, key=len)]
    return None

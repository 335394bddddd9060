"""Which tasks a ranking counts and which candidates it ranks: only tasks every ranked one ran.

Candidates that ran different tasks are never ranked against each other on what they happened to
run. The counted task set is the one that covers the most evidence (candidates covering it times
its tasks; then more candidates, more tasks, names); a candidate that did not run all of it is
listed with the tasks it lacks, not ranked, and tasks outside it are named as not counted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Coverage:
    tasks: tuple[str, ...]  #: the tasks counted for every ranked candidate
    ranked: tuple[str, ...]
    excluded: dict[str, str]  #: candidate -> why it is not ranked
    not_counted: tuple[str, ...]  #: tasks some candidate ran that are outside the counted set

    def describe(self, total: int) -> str:
        return f"{len(self.tasks)} task(s) every ranked candidate ran; {len(self.ranked)} of {total} candidate(s) ranked"


def choose_coverage(task_sets: dict[str, set[str]]) -> Coverage:
    """The counted task set and the candidates covering it (see the module docstring)."""
    nonempty = {c: s for c, s in task_sets.items() if s}
    options = {frozenset(s) for s in nonempty.values()}
    if nonempty:
        common = frozenset.intersection(*(frozenset(s) for s in nonempty.values()))
        if common:
            options.add(common)
    if not options:
        return Coverage((), (), {c: "no task in scope" for c in task_sets}, ())

    def merit(tasks: frozenset[str]) -> tuple[int, int, int, tuple[str, ...]]:
        covering = sum(tasks <= s for s in nonempty.values())
        return (covering * len(tasks), covering, len(tasks), tuple(sorted(tasks)))

    best = max(options, key=merit)
    ranked = tuple(sorted(c for c, s in nonempty.items() if best <= s))
    excluded: dict[str, str] = {}
    for cand, tasks in sorted(task_sets.items()):
        if cand in ranked:
            continue
        missing = sorted(best - tasks)
        excluded[cand] = f"did not run {', '.join(missing)} (every ranked candidate did)" if tasks else "no task in scope"
    others = sorted(set().union(*task_sets.values()) - best)
    return Coverage(tuple(sorted(best)), ranked, excluded, tuple(others))

"""ScriptedLM: an lm-eval ``LM`` scripted on purpose to answer from each task's own gold.

It proves the tasks' plumbing (prompts, targets, filters, metrics, aggregation) with answers
whose scores are known in advance: in ``gold`` mode it puts the highest log-likelihood on the
gold choice and generates the gold text (MBPP: the reference solution), so every task must
score 1.0; in ``wrong`` mode it prefers a wrong choice and generates a fixed nonsense string
that shares no word with any reference (and is not Python), so every task must score 0.0.
For rolling log-likelihood it returns exactly -ln 2 per UTF-8 byte (bits per byte = 1.0) in
``gold`` mode and -2 ln 2 (2.0) in ``wrong`` mode. ``generate`` replaces the scripted generation
where a test needs particular completions (e.g. misbehaving MBPP programs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.tasks import TaskManager

NONSENSE = "qzxv blorf wimble"


class ScriptedLM(LM):
    """Answers every request from the task that made it (looked up by ``Instance.metadata``)."""

    def __init__(
        self,
        task_manager: TaskManager,
        mode: Literal["gold", "wrong"] = "gold",
        generate: Callable[[Instance], str] | None = None,
    ) -> None:
        super().__init__()
        self.task_manager, self.mode, self.generate = task_manager, mode, generate
        self._tasks: dict = {}
        self.calls: dict[str, int] = {"loglikelihood": 0, "loglikelihood_rolling": 0, "generate_until": 0}

    def _task(self, name: str):
        if name not in self._tasks:
            self._tasks[name] = self.task_manager.load([name])["tasks"][name]
        return self._tasks[name]

    def _gold_index(self, inst: Instance) -> int:
        task = self._task(inst.metadata[0])
        gold = task.doc_to_target(inst.doc)
        return task.doc_to_choice(inst.doc).index(gold) if isinstance(gold, str) else int(gold)

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        self.calls["loglikelihood"] += len(requests)
        out = []
        for inst in requests:
            is_gold = inst.idx == self._gold_index(inst)
            favoured = is_gold if self.mode == "gold" else not is_gold
            out.append((0.0, True) if favoured else (-5.0, False))
        return out

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        self.calls["loglikelihood_rolling"] += len(requests)
        bits = 1.0 if self.mode == "gold" else 2.0
        return [-bits * math.log(2) * len(inst.args[0].encode("utf-8")) for inst in requests]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        self.calls["generate_until"] += len(requests)
        out = []
        for inst in requests:
            if self.generate is not None:
                out.append(self.generate(inst))
                continue
            if self.mode == "wrong":
                out.append(NONSENSE)
                continue
            text = str(self._task(inst.metadata[0]).doc_to_target(inst.doc))
            for stop in inst.args[1].get("until") or []:
                text = text.split(stop)[0]
            out.append(text)
        return out

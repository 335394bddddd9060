"""Metric functions the task YAMLs point at: ROUGE, macro-F1, MBPP pass@1.

lm-eval has no ROUGE metric of its own and its ``f1`` aggregation is binary (it fails on three
classes), so these fill the gaps using ``rouge-score`` and scikit-learn rather than hand-written
scorers. MBPP code is executed by ``medmoe_lm_eval.benchmarks.sandbox``, never in this process.
"""

from __future__ import annotations

import re
import textwrap
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from medmoe_lm_eval.benchmarks.calibration import calibration_scores
from medmoe_lm_eval.benchmarks.registry import PUBMEDQA_CHOICES
from medmoe_lm_eval.benchmarks.rows import stable_hash
from medmoe_lm_eval.benchmarks.sandbox import Limits, SandboxResult, run_program, run_programs

# -- ROUGE ----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _scorer(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


def _rouge(kind: str, references: Sequence[str], predictions: Sequence[str]) -> float:
    """Mean F1 of ``kind`` over the pairs (lm-eval passes one pair per call)."""
    scores = [_scorer(kind).score(str(ref), str(pred))[kind].fmeasure for ref, pred in zip(references, predictions, strict=True)]
    return sum(scores) / len(scores) if scores else 0.0


def rougeL_f1(references: Sequence[str], predictions: Sequence[str]) -> float:
    """ROUGE-L F1 (longest common subsequence, Porter-stemmed tokens), as in ``rouge-score``."""
    return _rouge("rougeL", references, predictions)


def rouge1_f1(references: Sequence[str], predictions: Sequence[str]) -> float:
    """ROUGE-1 F1 (unigram overlap, Porter-stemmed tokens)."""
    return _rouge("rouge1", references, predictions)


# -- multiple choice -------------------------------------------------------------------------


def macro_f1(items: Sequence[tuple[int, int]]) -> float:
    """Aggregation over ``(gold, pred)`` pairs: F1 averaged over the classes that occur.

    PubMedQA reports macro-F1 next to accuracy because its labels are unbalanced (few
    ``maybe``): always answering ``yes`` earns fair accuracy but poor macro-F1.
    """
    from sklearn.metrics import f1_score

    golds, preds = zip(*items, strict=True) if items else ((), ())
    return float(f1_score(golds, preds, average="macro", zero_division=0)) if golds else 0.0


def pubmedqa_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Per-document accuracy, the ``(gold, pred)`` pair that ``macro_f1`` aggregates, and calibration."""
    lls = [ll for ll, _ in results]
    pred = max(range(len(lls)), key=lls.__getitem__)
    gold = PUBMEDQA_CHOICES.index(doc["final_decision"])
    return {"acc": float(pred == gold), "macro_f1": (gold, pred), **calibration_scores(lls, gold)}


# -- MBPP ------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:[A-Za-z0-9_+-]+)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
MBPP_LIMITS = Limits()


def extract_code(text: str) -> str:
    """The program in a completion: the first fenced block if there is one, else the plain text.

    Base models answer in the MBPP ``[BEGIN] ... [DONE]`` form (the stop sequence removes
    ``[DONE]``); chat models tend to wrap code in fences, possibly unclosed when cut off.
    """
    match = _FENCE.search(text)
    code = match.group(1) if match else text
    code = code.replace("[BEGIN]", "").split("[DONE]")[0]
    return textwrap.dedent(code.replace("\r\n", "\n")).strip("\n")


def mbpp_program(doc: dict[str, Any], code: str) -> str:
    """Setup code, the candidate solution, then the benchmark's asserts."""
    return "\n".join([doc.get("test_setup_code") or "", code, *doc["test_list"], ""])


class _Verdicts:
    """Sandbox results computed ahead in parallel, consumed once per document.

    lm-eval scores documents one at a time, which would run MBPP programs one after another;
    the code-extraction filter sees every completion at once, so it runs them all on a small
    pool first and ``pass_at_1`` then takes each result (or runs the program itself if absent).
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self._store: OrderedDict[str, SandboxResult] = OrderedDict()
        self.capacity = capacity

    def prefetch(self, programs: Sequence[str], limits: Limits) -> None:
        todo = list(dict.fromkeys(p for p in programs if stable_hash(p) not in self._store))
        for program, result in zip(todo, run_programs(todo, limits), strict=True):
            self._store[stable_hash(program)] = result
            while len(self._store) > self.capacity:
                self._store.popitem(last=False)

    def take(self, program: str, limits: Limits) -> SandboxResult:
        return self._store.pop(stable_hash(program), None) or run_program(program, limits)


VERDICTS = _Verdicts()


def mbpp_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """lm-eval ``custom`` filter: extract code from every completion and pre-run the programs."""
    codes = [[extract_code(r) for r in resp] for resp in resps]
    VERDICTS.prefetch([mbpp_program(doc, c) for doc, cs in zip(docs, codes, strict=True) for c in cs], MBPP_LIMITS)
    return codes


def mbpp_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """pass@1 of one greedy completion (1.0 if the program ran all asserts to the end), and
    ``sandbox_isolated``: 1.0 if it ran under the kernel layer (namespaces), 0.0 if under
    resource limits and audit hooks only. Its mean lands in the results file, so a score whose
    programs were not kernel-isolated says so wherever the results are read.
    """
    verdict = VERDICTS.take(mbpp_program(doc, results[0]), MBPP_LIMITS)
    return {"pass_at_1": float(verdict.passed), "sandbox_isolated": float(verdict.isolated)}

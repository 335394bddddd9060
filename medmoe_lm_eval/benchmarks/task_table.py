"""The benchmark table: one row per task of the suite, the single home of what a task *is*.

Each project task (``tasks/medmoe_*.yaml``) has one :class:`TaskFacts` here: its domain (what the
oracle router routes on and what routing is judged by), its main metric and that metric's
direction, its number of answer options (multiple choice), the benchmark whose rows it scores
(and through ``registry`` that benchmark's hub source) and the document fields that group
dependent items into clusters. The task YAMLs repeat some of these for lm-eval, which reads only
YAML: ``tests/benchmarks/test_task_table.py`` checks every YAML agrees with this table, so a fact is changed
here and in the YAML together or the suite fails. The harness (``domains.task_domain``) and the
analysis (``analysis.plan``) read the table, never the YAMLs, at run time.

lm-eval's own medical, legal and code tasks are not ours to describe row by row; their domain is
known by name prefix (:data:`BUILTIN_PREFIXES`).
"""

from __future__ import annotations

from dataclasses import dataclass

from medmoe_lm_eval.benchmarks.metric_directions import direction
from medmoe_lm_eval.benchmarks.registry import MMLU_MEDICAL_SUBJECTS, PUBMEDQA_CHOICES, HubDataset, benchmark


@dataclass(frozen=True)
class TaskFacts:
    """What one project task is: the facts the YAML, the harness and the analysis share."""

    task: str  #: lm-eval task name
    domain: str  #: one of ``domains.DOMAINS``
    metric: str  #: the main metric, the one a ranking weighs (``metric_directions.main_metric``)
    n_options: int | None  #: answer options of a multiple-choice task; None for other output types
    benchmark: str | None = None  #: ``registry.BENCHMARKS`` key of the rows it scores; None: bundled text
    cluster_fields: tuple[str, ...] = ()  #: document fields naming an item's cluster (dependent items)
    cluster_cut: str = ""  #: cut the last field's value at the last occurrence of this separator

    @property
    def higher_is_better(self) -> bool:
        """The main metric's direction, from ``metric_directions`` (the one table of directions)."""
        known = direction(self.metric)
        if known is None:
            raise KeyError(f"task {self.task}: metric {self.metric!r} has no direction in metric_directions.METRIC_DIRECTIONS")
        return known

    @property
    def hub(self) -> HubDataset | None:
        """Where the task's rows live on the hub (``registry``), or None for bundled-only text."""
        return benchmark(self.benchmark).hub if self.benchmark else None


def _mmlu(subject: str) -> TaskFacts:
    return TaskFacts(f"medmoe_mmlu_{subject}", "biomedical", "acc", 4, f"mmlu_{subject}")


def _ppl(domain: str) -> TaskFacts:
    return TaskFacts(f"medmoe_ppl_{domain}", domain, "word_perplexity", None)


TASKS: dict[str, TaskFacts] = {
    t.task: t
    for t in (
        TaskFacts("medmoe_pubmedqa", "biomedical", "acc", len(PUBMEDQA_CHOICES), "pubmedqa"),
        # questions of one subject (e.g. Dental, Pathology) are not independent
        TaskFacts("medmoe_medmcqa", "biomedical", "acc", 4, "medmcqa", ("subject_name",)),
        # answers from one source document: the collection plus the qid before its "-<n>"
        TaskFacts("medmoe_medquad", "biomedical", "rougeL_f1", None, "medquad", ("source", "qid"), "-"),
        TaskFacts("medmoe_lawse", "legal", "rougeL_f1", None, "lawse"),
        TaskFacts("medmoe_legal_ruleqa", "legal", "rougeL_f1", None, "legal_ruleqa"),
        TaskFacts("medmoe_mbpp", "code", "pass_at_1", None, "mbpp"),
        TaskFacts("medmoe_medqa", "biomedical", "acc", 4, "medqa"),
        *(_mmlu(subject) for subject in MMLU_MEDICAL_SUBJECTS),
        *(_ppl(domain) for domain in ("biomedical", "legal", "code")),
    )
}

#: lm-eval built-ins, by name prefix (longest prefix wins)
BUILTIN_PREFIXES: dict[str, str] = {
    "medmcqa": "biomedical",
    "medqa": "biomedical",
    "pubmedqa": "biomedical",
    "headqa": "biomedical",
    "medconceptsqa": "biomedical",
    "mmlu_anatomy": "biomedical",
    "mmlu_clinical_knowledge": "biomedical",
    "mmlu_college_medicine": "biomedical",
    "mmlu_college_biology": "biomedical",
    "mmlu_medical_genetics": "biomedical",
    "mmlu_professional_medicine": "biomedical",
    "mmlu_virology": "biomedical",
    "mmlu_nutrition": "biomedical",
    "mmlu_professional_law": "legal",
    "mmlu_international_law": "legal",
    "mmlu_jurisprudence": "legal",
    "legalbench": "legal",
    "mbpp": "code",
    "humaneval": "code",
}


def task_benchmark(task: str) -> str | None:
    """The benchmark whose rows ``task`` scores; None for a task not in the table or without one."""
    facts = TASKS.get(task)
    return facts.benchmark if facts else None

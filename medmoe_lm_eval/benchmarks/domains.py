"""Which domain a task belongs to: what the oracle router routes on and what routing is judged by.

Our own tasks say so in their YAML (``metadata.domain``); lm-eval's built-in medical, legal and
code tasks are known by name prefix; an adapter can add or override entries with
``router.task_domains``. Group names never reach the model (requests carry subtask names).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from medmoe_lm_eval.paths import tasks_dir

DOMAINS = ("biomedical", "legal", "code")

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


class _TolerantLoader(yaml.SafeLoader):
    """Reads task YAMLs without executing ``!function`` tags (they become None)."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@lru_cache(maxsize=8)
def _project_task_domains(root: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(Path(root).rglob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TolerantLoader)
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        meta = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
        domain = meta.get("domain")
        name = data.get("task") if isinstance(data.get("task"), str) else None
        if name and domain:
            found[name] = str(domain)
    return found


def task_domain(task: str | None, overrides: Mapping[str, str] | None = None) -> str | None:
    """The domain of ``task``: adapter overrides, then our task YAMLs, then built-in prefixes."""
    if not task:
        return None
    for table in (overrides or {}, _project_task_domains(str(tasks_dir()))):
        if task in table:
            return table[task]
    for table in (overrides or {}, BUILTIN_PREFIXES):
        matches = [p for p in table if task.startswith(p)]
        if matches:
            return table[max(matches, key=len)]
    return None

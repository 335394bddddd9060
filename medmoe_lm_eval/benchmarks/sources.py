"""Where every benchmark's rows come from, and the project's fixed evaluation selections.

One switch for all tasks. ``--metadata '{"medmoe_data": ...}'`` (per run) or the ``MEDMOE_DATA``
environment variable chooses:

* unset or ``hub``: the Hugging Face hub dataset (the default for users);
* ``bundled``: the small real samples shipped in ``medmoe_lm_eval/benchmarks/bundled`` (offline, tests, demo);
* a folder: ``<folder>/<benchmark>.jsonl`` for benchmark in ``BENCHMARKS``, each row in the hub
  dataset's column schema and the file holding the evaluation split; the six MMLU medical
  subjects share ``mmlu_medical.jsonl`` (hub columns, ``subject`` choosing each task's rows), with
  their few-shot rows in ``mmlu_medical_dev.jsonl``.

Every source goes through the same row checks and the same selection (``Benchmark.select``), so a
task scores the same rows whichever way they arrived. Bad files fail with one line naming the
file, row and field (``DataError``).

The second half serves the offline demo: ``domain_texts`` and ``router_examples`` split the
bundled rows into ``train`` (only ``bundled/train/*`` files and a hash-chosen part of the LegalBench
texts) and ``heldout`` (the bundled evaluation rows, never trained on), and ``ppl_docs`` draws the
perplexity tasks' documents from the held-out part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medmoe_lm_eval import settings
from medmoe_lm_eval.benchmarks.registry import BENCHMARKS, Benchmark, HubDataset, benchmark
from medmoe_lm_eval.benchmarks.rows import DataError, read_numbered_jsonl
from medmoe_lm_eval.paths import bundled_data_dir

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

METADATA_KEY = "medmoe_data"


# -- benchmarks ------------------------------------------------------------------------------


# -- choosing the source ---------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """``hub``, or a folder of ``<benchmark>.jsonl`` files (``bundled`` is one such folder)."""

    kind: Literal["hub", "bundled", "dir"]
    directory: Path | None = None

    def file_for(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{name}.jsonl"


def resolve_source(setting: str | None = None) -> DataSource:
    """The source named by ``setting`` (from ``--metadata``), else by ``MEDMOE_DATA``, else the hub."""
    origin = f"--metadata {METADATA_KEY}" if setting not in (None, "") else settings.DATA.name
    value = str(setting if setting not in (None, "") else settings.DATA.text()).strip()
    if value in ("", "hub"):
        return DataSource("hub")
    if value == "bundled":
        return DataSource("bundled", bundled_data_dir())
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise DataError(
            origin,
            None,
            None,
            f"{value!r} is not 'hub', 'bundled' or an existing folder",
            f"set {origin} to 'hub', 'bundled' or a folder holding <benchmark>.jsonl files ({', '.join(dict.fromkeys(b.file_stem for b in BENCHMARKS.values()))})",
        )
    return DataSource("dir", folder.resolve())


def environment_setting() -> str:
    """The source a run records when ``--metadata`` names none: ``MEDMOE_DATA`` as this process
    sees it (``hub`` when unset), the value the tasks' loader falls back to. The lm-eval model
    records it with every run (``config.medmoe.medmoe_data``), so a plain ``lm_eval`` run and
    ``medmoe eval`` say the same thing about their data."""
    return settings.DATA.text() or "hub"


# -- reading and checking rows ---------------------------------------------------------------


def _get(row: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def check_rows(rows: Sequence[dict[str, Any]], bench: Benchmark, origin: str, first_row: int = 1) -> None:
    """Every row has the fields the task reads, with usable values; else a one-line ``DataError``."""
    fix = f"each row needs {', '.join(bench.required)} as in the hub dataset {bench.hub.path}"
    for i, row in enumerate(rows, start=first_row):
        if not isinstance(row, dict):
            raise DataError(origin, i, None, "is not a JSON object", "write one JSON object per line")
        for name in bench.required:
            present, value = _get(row, name)
            if not present or value is None:
                raise DataError(origin, i, name, "is missing", fix)
        problem = bench.check(row) if bench.check else None
        if problem:
            raise DataError(origin, i, problem[0], problem[1], fix)


def _checked_file_rows(path: Path, bench: Benchmark, what: str = "evaluation rows") -> list[dict[str, Any]]:
    hint = f"put the {bench.name} {what} there in the column schema of {bench.hub.label()}, or unset {settings.DATA.name} to use the hub"
    numbered = read_numbered_jsonl(path, hint)
    for lineno, row in numbered:  # row numbers in errors are the file's line numbers
        check_rows([row], bench, str(path), first_row=lineno)
    return [row for _, row in numbered]


def _hub_rows(bench: Benchmark, hub: HubDataset) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(hub.path, hub.name, split=hub.split)
    rows = [dict(r) for r in ds]
    check_rows(rows, bench, hub.label())
    return rows


def _subset(rows: list[dict[str, Any]], bench: Benchmark, origin: str) -> list[dict[str, Any]]:
    """This benchmark's rows of a file several benchmarks share (one MMLU subject of many)."""
    if bench.subset is None:
        return rows
    column, value = bench.subset
    kept = [r for r in rows if r.get(column) == value]
    if not kept:
        found = sorted({str(r.get(column)) for r in rows})
        raise DataError(origin, None, column, f"no rows with {column} {value!r} (found {found})", f"add the {value} rows to {origin}")
    return kept


def load_rows(name: str, source: DataSource) -> tuple[list[dict[str, Any]], str]:
    """The checked raw rows of benchmark ``name`` from ``source``, and where they came from."""
    bench = benchmark(name)
    if source.kind == "hub":
        return _subset(_hub_rows(bench, bench.hub), bench, bench.hub.label()), bench.hub.label()
    path = source.file_for(bench.file_stem)
    return _subset(_checked_file_rows(path, bench), bench, str(path)), str(path)


def fewshot_rows(name: str, source: DataSource) -> list[dict[str, Any]]:
    """The few-shot examples of a benchmark that has its own (MMLU's ``dev``), in file order.

    A folder without ``<fewshot_file>.jsonl`` gets the bundled ones: they are MMLU's whole
    ``dev`` split (five per subject), the same rows the hub would give.
    """
    bench = benchmark(name)
    if bench.fewshot_hub is None:
        return []
    if source.kind == "hub":
        return _subset(_hub_rows(bench, bench.fewshot_hub), bench, bench.fewshot_hub.label())
    path = source.file_for(bench.fewshot_file)
    if not path.is_file():
        log.info("%s: no %s; few-shot examples from the bundled %s", name, path, path.name)
        path = bundled_data_dir() / path.name
    return _subset(_checked_file_rows(path, bench, "few-shot rows"), bench, str(path))


def eval_docs(name: str, medmoe_data: str | None = None) -> list[dict[str, Any]]:
    """The rows benchmark ``name``'s task scores: checked, then the benchmark's fixed selection."""
    bench = benchmark(name)
    rows, origin = load_rows(name, resolve_source(medmoe_data))
    docs = bench.select(rows) if bench.select else rows
    if not docs:
        raise DataError(origin, None, None, f"no usable {name} rows ({bench.notes or 'none given'})", "supply rows that pass the selection")
    log.info("%s: %d evaluation rows from %s", name, len(docs), origin)
    return docs


def task_dataset(name: str, medmoe_data: str | None = None, **_metadata: Any) -> datasets.DatasetDict:
    """What a task's ``custom_dataset`` hook returns: the evaluation rows as split ``test``,
    and the few-shot examples as split ``dev`` for benchmarks that have their own.

    ``_metadata`` takes whatever else lm-eval passes (task metadata, ``--metadata``, model args).
    """
    import datasets

    splits = {"test": datasets.Dataset.from_list(eval_docs(name, medmoe_data))}
    if benchmark(name).fewshot_hub is not None:
        splits["dev"] = datasets.Dataset.from_list(fewshot_rows(name, resolve_source(medmoe_data)))
    return datasets.DatasetDict(splits)


def benchmark_dataset(**metadata: Any) -> datasets.DatasetDict:
    """``custom_dataset`` for tasks whose YAML names their benchmark in ``metadata.benchmark``,
    so that the six MMLU subjects share one hook."""
    name = metadata.pop("benchmark", None)
    if not isinstance(name, str):
        raise DataError("task YAML", None, "metadata.benchmark", "is missing", f"name the benchmark, one of {sorted(BENCHMARKS)}")
    return task_dataset(name, **metadata)


# -- text helpers ----------------------------------------------------------------------------


# -- bundled splits for the offline demo -----------------------------------------------------

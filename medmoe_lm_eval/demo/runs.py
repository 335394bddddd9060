"""One candidate through lm-eval, in this process, with its results stored safely.

The demo and the benchmarks evaluate many candidates in one process: ``simple_evaluate`` is
called directly (no CLI start-up per candidate) and the results file is lm-eval's own layout
(``<out>/<candidate>/results_<date>.json`` with the general-config fields lm-eval's tracker
adds), written to a temporary file and linked into place so a crash never leaves half a file
and an earlier run is never overwritten. lm-eval's per-sample logs are always kept, as its
tracker writes them (``samples_<task>_<date>.jsonl``, same date stamp, ``task_hashes`` in the
results), and written the same safe way before the results file that points at them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medmoe_lm_eval.jsonio import write_json_exclusive, write_lines_exclusive
from medmoe_lm_eval.paths import tasks_dir


def task_manager(data: str = "bundled", extra_include: list[str] | None = None, tasks: list[str] | None = None):
    """lm-eval's task manager with the project's tasks and a data source for them.

    Indexing every task YAML lm-eval ships costs about 5 s on two cores (10 s loaded), so a run
    whose ``tasks`` are all the project's own (the demo's) indexes only ``tasks/``: its tasks and
    results are the same, since nothing of ours refers to lm-eval's YAMLs. A run naming any other
    task, or none, gets the whole index. Either index never changes within a process, and tasks
    are built afresh from it on every ``simple_evaluate``, so each is built once per process.
    """
    include = tuple(extra_include or ())
    if tasks:
        own = _cached_task_manager(data, include, with_lm_eval_tasks=False)
        if all(task in own.all_tasks for task in tasks):
            return own
    return _cached_task_manager(data, include, with_lm_eval_tasks=True)


@functools.lru_cache(maxsize=8)
def _cached_task_manager(data: str, extra_include: tuple[str, ...], with_lm_eval_tasks: bool):
    from lm_eval.tasks import TaskManager

    paths = [*extra_include, str(tasks_dir())]
    return TaskManager(include_path=paths, include_defaults=with_lm_eval_tasks, metadata={"medmoe_data": data})


def evaluate_candidate(
    adapter: str | Path,
    tasks: list[str],
    out_dir: str | Path,
    name: str,
    limit: int | float | dict[str, int | float] | None = None,
    device: str | None = None,
    use_cache: str | None = None,
    data: str = "bundled",
    log_samples: bool = True,
    extra_model_args: dict[str, Any] | None = None,
    gen_kwargs: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Evaluate one adapter and store ``results_<date>.json`` under ``out_dir/<name>/``.

    ``limit`` per task (a dict) becomes lm-eval's ``samples`` (the first documents of each task)
    when the counts differ; lm-eval takes one ``limit`` or the other, never both.
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    from medmoe_lm_eval._lmeval_hook import register

    register()
    folder = Path(out_dir) / name
    model_args = {"adapter": str(adapter), "model": name, "log_dir": str(folder), **(extra_model_args or {})}
    tracker = EvaluationTracker()
    results = lm_eval.simple_evaluate(
        model="medmoe",
        model_args=model_args,
        tasks=tasks,
        task_manager=task_manager(data, tasks=tasks),
        **limits(limit),
        device=device,
        use_cache=use_cache,
        log_samples=log_samples,
        confirm_run_unsafe_code=True,
        evaluation_tracker=tracker,
        bootstrap_iters=1000,
        gen_kwargs=gen_kwargs,
    )
    samples = results.pop("samples", None) if log_samples else None
    tracker.general_config_tracker.log_end_time()
    results.update(asdict(tracker.general_config_tracker))
    from lm_eval.utils import handle_non_serializable

    stamp = _stamp()
    if samples:
        results["task_hashes"] = write_samples(folder, stamp, samples)
    return write_json_exclusive(folder / f"results_{stamp}.json", results, default=handle_non_serializable), results


def limits(limit: int | float | dict[str, int | float] | None) -> dict[str, Any]:
    """``limit`` as ``simple_evaluate`` takes it: one ``limit`` for every task, or ``samples`` per task."""
    if not isinstance(limit, dict):
        return {"limit": limit}
    counts = set(limit.values())
    if len(counts) <= 1:
        return {"limit": next(iter(counts), None)}
    fractions = sorted(t for t, n in limit.items() if n != int(n))
    if fractions:
        raise ValueError(f"limit: per-task counts must be whole documents, not fractions ({fractions}); fix: give whole numbers or one limit for all")
    return {"samples": {task: list(range(int(n))) for task, n in limit.items()}}


def _sample_line(sample: dict[str, Any]) -> str:
    """One per-sample line exactly as lm-eval's ``EvaluationTracker.save_results_samples`` writes it."""
    from lm_eval.utils import handle_non_serializable, sanitize_list

    line = dict(sample)
    line["arguments"] = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(arg)} for i, arg in enumerate(sample["arguments"])}
    line["resps"] = sanitize_list(sample["resps"])
    line["filtered_resps"] = sanitize_list(sample["filtered_resps"])
    line["target"] = str(sample["target"])
    return json.dumps(line, default=handle_non_serializable, ensure_ascii=False) + "\n"


def write_samples(folder: Path, stamp: str, samples: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Write each task's ``samples_<task>_<stamp>.jsonl``; return lm-eval's ``task_hashes`` for them."""
    from lm_eval.utils import hash_string

    hashes = {}
    for task, rows in samples.items():
        write_lines_exclusive(folder / f"samples_{task}_{stamp}.jsonl", (_sample_line(s) for s in rows))
        hashes[task] = hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in rows))
    return hashes


def _stamp() -> str:
    from datetime import datetime

    return datetime.now().isoformat().replace(":", "-")

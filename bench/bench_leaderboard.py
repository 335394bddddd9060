"""Leaderboard speed: reading many results files, the rank-interval bootstrap, and the app's first render.

Targets: 1,000 results files into the tidy frame in <= 2 s; a use-case ranking with rank intervals
(1,000 bootstrap draws of the items) for 20 candidates x 9 tasks x 500 items in <= 5 s; ranking a
folder whose runs kept 250,000-line per-sample logs within 2.5 GB of memory (peak RSS of a fresh
process); the Streamlit app's first render (in ``AppTest``) with 200 candidates x 9 tasks in <= 3 s.

The files are copies of real ones: the script first runs lm-eval on tiny models (the test suite's
``results_fixtures``; about half a minute) or takes ``--source`` (a folder of real results), then
writes copies under new candidate names, dates and task names. Prints the figures; asserts nothing.

The bootstrap runs on per-item scores drawn here (0/1 outcomes, a different accuracy per
candidate), in the item-frame layout the store reads from lm-eval's per-sample logs.

    python bench/bench_leaderboard.py [--files 1000] [--candidates 200] [--tasks 9] [--source DIR] [--big-lines 250000] [--only-big]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def build_source(workdir: Path) -> Path:
    """Real lm-eval runs of tiny models (what the tests read)."""
    import results_fixtures as rf
    from transformers import AutoTokenizer

    from medmoe_lm_eval.testing.tiny import TinySpec, build_model, build_tiny_model

    texts = [q for qs in rf.QUESTIONS.values() for q, _ in qs] * 20
    base = build_tiny_model(workdir / "model", texts, TinySpec(seed=0))
    tok = AutoTokenizer.from_pretrained(str(base))
    experts = {}
    for seed, domain in enumerate(("biomedical", "legal", "code"), start=1):
        path = workdir / f"expert_{domain}"
        build_model(tok, TinySpec(seed=seed)).save_pretrained(str(path))
        tok.save_pretrained(str(path))
        experts[domain] = path
    return rf.build_board_results(workdir / "board", base, experts).root


def real_templates(source: Path) -> list[dict]:
    """The medmoe results files of ``source`` (those carry profiles and routing summaries)."""
    out = []
    for path in sorted(source.rglob("results_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if (data.get("config", {}).get("medmoe_profile") or {}).get("enabled", False):
            out.append(data)
    if not out:
        raise SystemExit(f"no medmoe results with a profile under {source}")
    return out


def widen_tasks(data: dict, n_tasks: int) -> dict:
    """Copy the run's tasks under new names until it has ``n_tasks`` tasks."""
    data = copy.deepcopy(data)
    names = list(data["results"])
    sections = ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "task_hashes")
    profile_tasks = data["config"]["medmoe_profile"].get("tasks", {})
    per_task = data["config"]["medmoe"].get("routing", {}).get("per_task", {})
    for i in range(n_tasks - len(names)):
        src, new = names[i % len(names)], f"{names[i % len(names)]}_{i // len(names) + 2}"
        for key in sections:
            if src in data.get(key, {}):
                data[key][new] = copy.deepcopy(data[key][src])
        for table in (profile_tasks, per_task):
            if src in table:
                table[new] = copy.deepcopy(table[src])
    return data


def write_copies(templates: list[dict], out: Path, n_files: int, n_candidates: int, n_tasks: int) -> None:
    """``n_files`` results files spread over ``n_candidates`` candidates (re-runs for the rest)."""
    wide = [widen_tasks(t, n_tasks) for t in templates]
    for i in range(n_files):
        data = copy.deepcopy(wide[i % len(wide)])
        name = f"cand-{i % n_candidates:04d}"
        data["config"]["medmoe"]["candidate"] = name
        data["date"] = float(data.get("date") or 1.8e9) + i
        for scores in data["results"].values():  # spread the accuracies a little
            for key in [k for k in scores if k.startswith("acc,")]:
                scores[key] = round((scores[key] + (i % 17) / 40) % 1.0, 4)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"results_2026-05-01T00-00-{i:06d}.json").write_text(json.dumps(data), encoding="utf-8")


def time_reading(folder: Path, repeats: int) -> tuple[list[float], int, int]:
    from medmoe_lm_eval.store.files import find_result_files
    from medmoe_lm_eval.store.results import load_results

    times, rows = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        rows = len(load_results(folder).history)
        times.append(time.perf_counter() - started)
    return times, len(find_result_files(folder)), rows


def bootstrap_inputs(n_candidates: int, n_tasks: int, n_items: int):
    """A tidy frame and an item frame for ``n_candidates`` x ``n_tasks`` x ``n_items`` 0/1 outcomes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    skill = np.linspace(0.3, 0.7, n_candidates)
    frames, items = [], []
    for t in range(n_tasks):
        hardness = rng.normal(0, 0.1, n_items)
        outcomes = (rng.uniform(size=(n_items, n_candidates)) < np.clip(skill[None, :] + hardness[:, None], 0, 1)).astype(float)
        for c in range(n_candidates):
            name, task = f"cand-{c:02d}", f"task{t}"
            latency = tuple(10.0 + c + rng.normal(0, 2, 6))  # the serving probe's six measurements (its default)
            frames.append({"candidate": name, "task": task, "domain": "biomedical", "metric": "acc", "filter": "none", "value": outcomes[:, c].mean(),
                           "stderr": outcomes[:, c].std(ddof=1) / np.sqrt(n_items), "is_group": False, "kind": "full", "n_choices": 4.0,
                           "latency_ms_p50": float(np.median(latency)), "latency_samples_ms": latency, "peak_memory_bytes": 1e9, "energy_per_correct_j": np.nan, "generated_tokens_per_s": np.nan,
                           "requests_per_s": 5.0, "num_parameters": 1e6})  # fmt: skip
            items.append(pd.DataFrame({"candidate": name, "run_id": name, "task": task, "doc_id": np.arange(n_items), "doc_hash": [f"h{i}" for i in range(n_items)],
                                       "metric": "acc", "score": outcomes[:, c], "n_choices": 4.0, "option_ll": None}))  # fmt: skip
    return pd.DataFrame(frames), pd.concat(items, ignore_index=True)


def time_bootstrap(n_candidates: int, n_tasks: int, n_items: int, repeats: int) -> tuple[list[float], int]:
    """Seconds for one use-case ranking with rank intervals (lining up items, 1,000 draws, ranks)."""
    from medmoe_lm_eval.analysis.ranking import rank_use_case
    from medmoe_lm_eval.analysis.use_cases import UseCase

    frame, items = bootstrap_inputs(n_candidates, n_tasks, n_items)
    case = UseCase(slug="bench", name="Bench", weights={"accuracy": 0.7, "latency": 0.3})
    times, tied = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        ranking = rank_use_case(frame, case, items)
        times.append(time.perf_counter() - started)
        tied = int(ranking.table["tied_with_leader"].sum())
    return times, tied


def write_big_log(root: Path, lines: int, candidates: int = 2) -> None:
    """A results folder whose runs each kept a ``lines``-line per-sample log of one task."""
    import numpy as np
    from audit_fixtures import TaskRun, write_run

    rng = np.random.default_rng(0)
    for c in range(candidates):
        correct = (rng.uniform(size=lines) < 0.5 + 0.05 * c).astype(int).tolist()
        write_run(root, f"big-{c}", {"big_task": TaskRun(correct, metrics=("acc", "acc_norm"))})


def _rank_big(folder: str) -> None:
    """Child process: rank ``folder`` and print seconds and peak RSS (what the parent reports)."""
    import resource

    from medmoe_lm_eval.analysis.ranking import rank_results
    from medmoe_lm_eval.analysis.use_cases import UseCase
    from medmoe_lm_eval.store.results import load_results

    started = time.perf_counter()
    ranking = rank_results(load_results(folder), UseCase(slug="big", name="Big", weights={"accuracy": 1.0}))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    ranks = dict(zip(ranking.table["candidate"], ranking.table["rank"], strict=True))
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "ranks": ranks, "notes": ranking.notes}))


def time_big_log(lines: int) -> dict:
    """Rank a folder with ``lines``-line per-sample logs in a fresh process; its peak RSS and time."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="bench_big_") as tmp:
        write_big_log(Path(tmp), lines)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
        proc = subprocess.run([sys.executable, __file__, "--rank-big", tmp], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_to_run_noise(source: Path) -> dict[str, float]:
    """Relative difference, per measured figure, between the two runs of ``tiny-bio`` (the same
    candidate evaluated twice by the source folder): what a use case's tolerances must cover."""
    import numpy as np

    from medmoe_lm_eval.store.results import load_results

    hist = load_results(source).history
    runs = hist[(hist["candidate"] == "tiny-bio") & (hist["metric"] == "acc")]
    out = {}
    for column in ("requests_per_s", "generated_tokens_per_s", "peak_memory_bytes", "energy_j", "latency_ms_p50"):
        per_run = runs.groupby("run_id")[column].mean().to_numpy(dtype=float)
        if len(per_run) == 2 and np.isfinite(per_run).all() and per_run.max() > 0:
            out[column] = float(abs(per_run[0] - per_run[1]) / per_run.max())
    return out


def time_first_render(folder: Path) -> dict[str, float]:
    """AppTest: the first run of the app (cold cache: reads the folder), then each page."""
    from streamlit.testing.v1 import AppTest

    from medmoe_lm_eval.paths import leaderboard_dir

    os.environ["MEDMOE_RESULTS"] = str(folder)
    at = AppTest.from_file(str(leaderboard_dir() / "app.py"), default_timeout=120)
    started = time.perf_counter()
    at.run()
    figures = {"first render (overview, cold cache)": time.perf_counter() - started}
    if at.exception:
        raise SystemExit(f"app raised: {[e.value for e in at.exception]}")
    for page in ("use_cases", "tradeoffs", "routing", "compare", "overview"):
        started = time.perf_counter()
        at.switch_page(f"pages/{page}.py").run()
        figures[f"page {page} (warm cache)"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, help="a folder of real results (default: run lm-eval on tiny models first)")
    parser.add_argument("--items", type=int, default=500, help="items per task for the bootstrap figure")
    parser.add_argument("--boot-candidates", type=int, default=20, help="candidates for the bootstrap figure")
    parser.add_argument("--big-lines", type=int, default=250_000, help="lines of each per-sample log in the memory figure (0: skip)")
    parser.add_argument("--only-big", action="store_true", help="print only the memory figure")
    parser.add_argument("--rank-big", metavar="DIR", help=argparse.SUPPRESS)  # the memory figure's child process
    args = parser.parse_args()
    if args.rank_big:
        _rank_big(args.rank_big)
        return
    if args.big_lines:
        big = time_big_log(args.big_lines)
        print(
            f"rank a folder with two {args.big_lines:,}-line per-sample logs: {big['seconds']:.1f} s, peak RSS {big['peak_rss_bytes'] / 2**30:.2f} GiB "
            f"(target <= 2.5 GB); {'; '.join(big['notes'])}"
        )
    if args.only_big:
        return
    times, tied = time_bootstrap(args.boot_candidates, args.tasks, args.items, args.repeats)
    print(
        f"rank intervals, {args.boot_candidates} candidates x {args.tasks} tasks x {args.items} items, 1000 bootstrap draws: "
        f"median {statistics.median(times):.2f} s, best {min(times):.2f} s (target <= 5 s); {tied} tied with the leader"
    )
    with tempfile.TemporaryDirectory(prefix="bench_board_") as tmp:
        work = Path(tmp)
        source = args.source or build_source(work / "source")
        noise = run_to_run_noise(source)
        print("run-to-run difference of one candidate evaluated twice: " + ", ".join(f"{k} {v:.1%}" for k, v in noise.items()))
        templates = real_templates(source)

        many = work / "many"
        write_copies(templates, many, args.files, args.files, 3)
        times, n_files, rows = time_reading(many, args.repeats)
        print(f"read {n_files} results files -> {rows} rows: median {statistics.median(times):.2f} s, best {min(times):.2f} s (target <= 2 s)")

        board = work / "board"
        write_copies(templates, board, args.candidates, args.candidates, args.tasks)
        for label, seconds in time_first_render(board).items():
            target = " (target <= 3 s)" if label.startswith("first render") else ""
            print(f"app {label}, {args.candidates} candidates x {args.tasks} tasks: {seconds:.2f} s{target}")


if __name__ == "__main__":
    main()

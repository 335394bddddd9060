"""Experts on different servers serve at once: a two-server ensemble against its experts alone.

    python bench/bench_concurrency.py [--limit 150] [--sequential]

Two tiny Llamas of the demo's size (f32 GGUF files), each served by its own single-threaded
``llama_cpp.server`` on 127.0.0.1, are the two remote experts of a uniform ensemble (every
request goes to both). The ensemble and each expert alone run the project's MedMCQA task on the
bundled questions through the plain ``lm_eval`` CLI, and lm-eval's own
``total_evaluation_time_seconds`` is compared: ensemble / (A alone + B alone), target <= 0.65 on
two cores. Taking turns, the ensemble would cost about the sum of its experts; serving at once,
about the slower one. ``--sequential`` also runs the ensemble with ``concurrent=false`` (the
order of one expert after the other). The concurrent run's profile shows each expert's own busy
time and the candidate's, which is the union of the two.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))  # llama_server: start/stop a server by pid

TASK = "medmoe_medmcqa"
NAMES = ("a", "b")


def build(root: Path) -> dict[str, tuple[Path, Path]]:
    """Two random tiny Llamas sharing a tokenizer, each with its f32 GGUF: ``name -> (hf dir, gguf)``."""
    from dataclasses import replace

    from medmoe_lm_eval.demo.builder import DemoSettings
    from medmoe_lm_eval.paths import bundled_data_dir
    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf
    from medmoe_lm_eval.testing.tiny import build_tiny_model

    spec = DemoSettings().spec
    texts = [line for path in sorted(bundled_data_dir().glob("*.jsonl")) for line in itertools.islice(path.open(encoding="utf-8"), 100)]
    base = build_tiny_model(root / "tokenizer", texts, spec)
    out = {}
    for seed, name in enumerate(NAMES, start=1):
        model = build_tiny_model(root / name, texts, replace(spec, seed=seed), tokenizer_dir=base)
        out[name] = (model, hf_to_gguf(model, root / f"{name}-f32.gguf", "f32"))
    return out


def served(name: str) -> str:
    """The model name a server answers to (not a folder name, which the adapter would read as a path)."""
    return f"served-{name}"


def expert(name: str, model: Path, url: str) -> dict[str, Any]:
    return {"name": name, "backend": "remote", "model": served(name), "base_url": url, "tokenizer": str(model), "max_length": 512, "timeout_s": 120.0}


def adapter(root: Path, name: str, experts: list[dict[str, Any]]) -> Path:
    data: dict[str, Any] = {"name": name, "kind": "single", "experts": experts}
    if len(experts) > 1:
        data.update(kind="moe", router={"type": "uniform"})
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def lm_eval_run(adapter_path: Path, out: Path, limit: int, extra: str = "") -> dict[str, Any]:
    """One plain ``lm_eval`` command; its results file."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDMOE_DATA": "bundled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [
        str(Path(sys.executable).with_name("lm_eval")), "--model", "medmoe", "--model_args", f"adapter={adapter_path}{extra}",
        "--tasks", TASK, "--include_path", str(REPO / "tasks"), "--limit", str(limit), "--device", "cpu", "--output_path", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"lm_eval failed for {adapter_path.name}:\n{done.stderr[-3000:]}")
    [path] = out.rglob("results_*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def seconds(results: dict[str, Any]) -> float:
    return float(results["total_evaluation_time_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=150, help="MedMCQA questions (bundled)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per figure, the runs taking turns")
    parser.add_argument("--sequential", action="store_true", help="also run the ensemble with concurrent=false")
    args = parser.parse_args()
    from llama_server import llama_server

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        models = build(root)
        urls = {n: stack.enter_context(llama_server(gguf, n_ctx=512, n_threads=1, alias=served(n)))[0] for n, (_, gguf) in models.items()}
        experts = {n: expert(n, models[n][0], urls[n]) for n in NAMES}
        both = adapter(root, "ensemble", list(experts.values()))
        plan = {n: (adapter(root, f"alone-{n}", [experts[n]]), "") for n in NAMES}
        plan["ensemble"] = (both, "")
        if args.sequential:
            plan["sequential"] = (both, ",concurrent=false")
        runs: dict[str, dict[str, Any]] = {}
        for repeat in range(args.repeats):  # taking turns, so a machine that gets busier penalises no side
            for i, (key, (path, extra)) in enumerate(plan.items()):
                result = lm_eval_run(path, root / f"out-{key}-{repeat}-{i}", args.limit, extra)
                if key not in runs or seconds(result) < seconds(runs[key]):
                    runs[key] = result
    report(runs, args.limit)


def report(runs: dict[str, dict[str, Any]], limit: int) -> None:
    a, b, ens = seconds(runs["a"]), seconds(runs["b"]), seconds(runs["ensemble"])
    print(f"{limit} MedMCQA questions, two single-threaded llama_cpp.server experts, {os.cpu_count()} cores (lm-eval total_evaluation_time_seconds)")
    print(f"  expert A alone      : {a:7.1f} s")
    print(f"  expert B alone      : {b:7.1f} s")
    print(f"  ensemble, at once   : {ens:7.1f} s   ratio ensemble / (A + B) = {ens / (a + b):.3f} (target <= 0.65)")
    if "sequential" in runs:
        seq = seconds(runs["sequential"])
        print(f"  ensemble, in turns  : {seq:7.1f} s   ratio {seq / (a + b):.3f}")
    profile = runs["ensemble"]["config"]["medmoe_profile"]
    own = ", ".join(f"{n} {profile['experts'][n]['wall_s']:.1f} s" for n in NAMES)
    serving = profile["serving"]
    print(f"  concurrent profile  : busy per expert {own}; candidate busy {serving['busy_s']:.1f} s (union), parallelism {serving['parallelism']:.2f}")


if __name__ == "__main__":
    main()

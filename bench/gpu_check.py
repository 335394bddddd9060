"""The CUDA and NVML paths on a real NVIDIA GPU: what the CPU test suite reaches only through a stand-in.

The test suite runs where there is no GPU, so it checks the NVML code against a stand-in
``pynvml`` module. This script is the check on the real thing, for a machine that has a GPU:

1. NVML itself: ``NvmlProbe`` opens ``cuda:0``, names the GPU and driver, and while the GPU
   multiplies matrices the energy counter advances, power is positive and our process's memory
   (or the device's, where NVML hides per-process figures) is read.
2. The whole harness: a tiny Llama evaluated through ``lm_eval.simple_evaluate(model="medmoe")``
   on CUDA and on CPU (rolling loglikelihood, multiple choice and generation tasks from the
   bundled samples) gives the same metrics, and the CUDA run's profile holds the GPU's name,
   NVML energy (joules, per request), NVML and torch peak memory.
3. Memory: a bigger model's torch peak is larger, and with ``max_resident=1`` an evicted expert's
   GPU memory is returned before the next loads (``ExpertPool.release`` -> ``empty_cache``).
4. Batching: a one-expert candidate against ``lm_eval --model hf`` on the same model at the same
   ``--batch_size`` (16 and auto) on the GPU: wall-time ratio <= 1.05 (best of two, taking turns),
   per-request log-likelihoods within 1e-5, and the expert's effective batch size.

Run: ``python bench/gpu_check.py`` (under a minute on one GPU; ``--json out.json`` keeps the
figures). Exits 1 when a check fails, 2 when no CUDA device is visible.
"""

from __future__ import annotations

import os

os.environ.setdefault("MEDMOE_DATA", "bundled")  # the bundled samples: no hub needed
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=140)
TASKS = ["medmoe_ppl_biomedical", "medmoe_pubmedqa", "medmoe_legal_ruleqa"]
#: fp32 on a GPU and on a CPU sum in different orders; metrics agree to well within this
REL_TOLERANCE = 1e-3
MIB = 2**20


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


# -- 1. NVML on the real GPU --------------------------------------------------------------------------


def check_nvml(seconds: float = 3.0) -> tuple[list[Check], dict[str, Any]]:
    import torch

    from medmoe_lm_eval.profiling.nvml import ENERGY_MODULUS_MJ, NvmlProbe

    probe, reason = NvmlProbe.open("cuda:0")
    if probe is None:
        return [Check("NVML opens on cuda:0", False, str(reason))], {}
    try:
        info = probe.info()
        a = torch.randn(8192, 8192, device="cuda:0")
        readings, errors = [], []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            for _ in range(20):
                a = torch.tanh(a @ a)  # tanh keeps the values finite
            torch.cuda.synchronize()
            readings.append((time.perf_counter(), probe.read({os.getpid()}, errors)))
    finally:
        probe.close()
    energies = [r.energy_mj for _, r in readings if r.energy_mj is not None]
    powers = [r.power_w for _, r in readings if r.power_w is not None]
    used = [(r.used_bytes, r.scope) for _, r in readings if r.used_bytes is not None]
    joules = ((energies[-1] - energies[0]) % ENERGY_MODULUS_MJ) / 1000.0 if len(energies) >= 2 else None
    span = readings[-1][0] - readings[0][0] if len(readings) >= 2 else 0.0
    figures = {
        **info,
        "samples": len(readings),
        "energy_counter_j": joules,
        "mean_power_from_counter_w": joules / span if joules and span > 0 else None,
        "max_power_w": max(powers) if powers else None,
        "peak_used_mib": max(u for u, _ in used) / MIB if used else None,
        "memory_scope": used[-1][1] if used else None,
        "errors": errors,
        "unsupported": probe.notes,
    }
    return [
        Check("NVML opens on cuda:0 and names the GPU", bool(info.get("gpu_name")), f"{info.get('gpu_name')}, driver {info.get('gpu_driver')}"),
        Check("energy counter advances under load", bool(joules and joules > 0), f"{joules} J over {span:.2f} s"),
        Check("power readings are positive", bool(powers and min(powers) > 0), f"max {figures['max_power_w']} W"),
        Check("memory of this process is read", bool(used), f"peak {figures['peak_used_mib']} MiB, scope {figures['memory_scope']}"),
        Check("no NVML reading failed", not errors, "; ".join(errors) or "none"),
    ], figures


# -- 2. the harness on CUDA vs CPU ----------------------------------------------------------------------


def _texts(per_domain: int = 100) -> list[str]:
    from medmoe_lm_eval.benchmarks.domains import DOMAINS
    from medmoe_lm_eval.benchmarks.splits import domain_texts

    return [t for domain in DOMAINS for t in domain_texts(domain, "train")[:per_domain]]


def build(root: Path, name: str, **spec: int) -> Path:
    from medmoe_lm_eval.testing.tiny import TinySpec, build_tiny_model

    return build_tiny_model(root / name, _texts(), TinySpec(**spec), train_steps=30, batch_size=8, seq_len=64)


def adapter(root: Path, name: str, experts: dict[str, Path], max_resident: int | None = None) -> Path:
    import yaml

    body: dict[str, Any] = {
        "name": name,
        "kind": "single" if len(experts) == 1 else "moe",
        "experts": [{"name": e, "domain": e, "model": str(p), "device": "auto", "batch_size": 8, "max_length": 512} for e, p in experts.items()],
    }
    if len(experts) > 1:
        body["router"] = {"type": "oracle"}
    if max_resident:
        body["memory"] = {"max_resident": max_resident}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def evaluate(adapter_path: Path, device: str, limit: int) -> dict[str, Any]:
    import lm_eval

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager

    register()
    return lm_eval.simple_evaluate(
        model="medmoe",
        model_args={"adapter": str(adapter_path), "profile": True, "log_dir": str(adapter_path.parent / "logs")},
        tasks=TASKS,
        task_manager=task_manager(),
        device=device,
        limit=limit,
        log_samples=False,
    )


def _metrics(results: dict[str, Any]) -> dict[str, float]:
    return {
        f"{task}/{key}": float(value)
        for task, entry in results["results"].items()
        for key, value in entry.items()
        if isinstance(value, (int, float)) and "stderr" not in key and key != "alias" and math.isfinite(value)
    }


def check_harness(root: Path, model_dir: Path, limit: int) -> tuple[list[Check], dict[str, Any]]:
    path = adapter(root, "gpu-check-tiny", {"biomedical": model_dir})
    runs = {device: evaluate(path, device, limit) for device in ("cuda:0", "cpu")}
    gpu, cpu = _metrics(runs["cuda:0"]), _metrics(runs["cpu"])
    worst = max((abs(gpu[k] - cpu[k]) / max(abs(cpu[k]), 1e-12) for k in cpu), default=math.inf)
    profile = runs["cuda:0"]["config"]["medmoe_profile"]
    energy, memory = profile["energy"], profile["memory"]["gpu"] or {}
    hardware, lat = profile["hardware"], profile["total"]["batch_latency_ms"]
    idle = (energy.get("devices") or {}).get("cuda:0") or {}
    streams = list((profile.get("single_stream") or {}).values())
    figures = {"metrics_cuda": gpu, "metrics_cpu": cpu, "max_rel_diff": worst, "profile_cuda": profile}
    return [
        Check(
            "CUDA and CPU runs give the same metrics",
            set(gpu) == set(cpu) and worst <= REL_TOLERANCE,
            f"{len(cpu)} metrics, max relative difference {worst:.2e}",
        ),
        Check("profile names the GPU", bool(hardware.get("gpu_name")), f"{hardware.get('gpu_name')} (driver {hardware.get('gpu_driver')})"),
        Check(
            "profile energy from NVML",
            energy["source"] in ("nvml_energy_counter", "nvml_power_integral") and (energy["joules"] or 0) > 0,
            f"{energy['source']}: {energy['joules']} J, {energy['per_request_j']} J/request, reason {energy['reason']}",
        ),
        Check(
            "profile GPU peak memory (NVML and torch)",
            (memory.get("nvml_peak_used_bytes") or 0) > 0 and (memory.get("torch_max_allocated_bytes") or 0) > 0,
            f"nvml {memory.get('nvml_peak_used_bytes')} B ({memory.get('nvml_scope')}), torch {memory.get('torch_max_allocated_bytes')} B",
        ),
        Check(
            "idle power of the GPU measured by NVML before the run and subtracted",
            (idle.get("idle_w") or 0) > 0 and idle.get("batches_j") is not None and idle["batches_j"] <= (idle.get("batches_gross_j") or 0),
            f"idle {idle.get('idle_w')} W ({idle.get('idle_source')}), batches {idle.get('batches_j')} J net of {idle.get('batches_gross_j')} J",
        ),
        Check(
            "single-stream latency through the transformers streamer on the GPU",
            bool(streams) and all(s["streamed"] and s["ttft_ms"]["p50"] <= s["e2e_ms"]["p50"] for s in streams),
            "; ".join(f"TTFT {s['ttft_ms']['p50']:.1f} ms, E2E {s['e2e_ms']['p50']:.1f} ms" for s in streams) or "no probe",
        ),
        Check(
            "p50 <= p95 <= max batch latency",
            lat["p50"] <= lat["p95"] <= lat["max"],
            f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['max']:.2f} ms over {lat['n']} batches",
        ),
    ], figures


# -- 3. GPU memory: size and release --------------------------------------------------------------------


def check_memory(root: Path, small: Path, big: Path, limit: int) -> tuple[list[Check], dict[str, Any]]:
    import torch

    from medmoe_lm_eval.harness.config import load_adapter
    from medmoe_lm_eval.harness.pool import ExpertPool
    from medmoe_lm_eval.profiling.profiler import Profiler

    peaks = {}
    for name, model_dir in (("small", small), ("big", big)):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        evaluate(adapter(root, f"gpu-check-{name}", {"biomedical": model_dir}), "cuda:0", limit)
        peaks[name] = torch.cuda.max_memory_allocated()
    cfg = load_adapter(str(adapter(root, "gpu-check-pair", {"biomedical": big, "legal": big}, max_resident=1)))
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    pool = ExpertPool(cfg.experts, Profiler(enabled=False), max_resident=1, device="cuda:0")
    pool.get("biomedical")
    one = torch.cuda.memory_allocated() - base
    pool.get("legal")  # evicts biomedical first
    after_swap = torch.cuda.memory_allocated() - base
    pool.close()
    after_close = torch.cuda.memory_allocated() - base
    figures = {
        "torch_peak_small_mib": peaks["small"] / MIB,
        "torch_peak_big_mib": peaks["big"] / MIB,
        "one_expert_mib": one / MIB,
        "after_swap_mib": after_swap / MIB,
        "after_close_mib": after_close / MIB,
    }
    return [
        Check("bigger model, higher torch peak", peaks["big"] > peaks["small"], f"{peaks['small'] / MIB:.1f} -> {peaks['big'] / MIB:.1f} MiB"),
        Check(
            "max_resident=1: evicted expert's memory returned",
            one > 0 and after_swap <= 1.05 * one,
            f"one expert {one / MIB:.1f} MiB, after swap {after_swap / MIB:.1f} MiB",
        ),
        Check("pool.close() returns all expert memory", after_close <= 0.05 * one, f"{after_close / MIB:.2f} MiB left"),
    ], figures


# -- 4. the batch size on the GPU ------------------------------------------------------------------------


def _timed_run(model: str, model_args: dict[str, Any], batch_size: str, limit: int) -> tuple[float, dict[str, Any]]:
    import lm_eval

    from medmoe_lm_eval.demo.runs import task_manager

    start = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=TASKS, task_manager=task_manager(), device="cuda:0",
        limit=limit, batch_size=batch_size, log_samples=True, bootstrap_iters=0,
    )  # fmt: skip
    return time.perf_counter() - start, results


def _answers(results: dict[str, Any]) -> list[Any]:
    return [
        r[0][0] if isinstance(r[0], list | tuple) else r[0]
        for task in sorted(results["samples"])
        for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])
        for r in s["resps"]
    ]


def check_batching(root: Path, model_dir: Path, limit: int, repeats: int = 2) -> tuple[list[Check], dict[str, Any]]:
    from medmoe_lm_eval._lmeval_hook import register

    register()
    single = adapter(root, "gpu-check-batch", {"biomedical": model_dir})
    checks, figures = [], {}
    for batch_size in ("16", "auto"):
        best = {"hf": math.inf, "medmoe": math.inf}
        out: dict[str, dict[str, Any]] = {}
        for _ in range(repeats):  # taking turns, so drift penalises neither side
            # like with like: hf serves the evaluation only, so the medmoe side runs without its serving probe
            sides = {"hf": ("hf", {"pretrained": str(model_dir)}), "medmoe": ("medmoe", {"adapter": str(single), "probe": 0})}
            for side, (model, args) in sides.items():
                seconds, out[side] = _timed_run(model, args, batch_size, limit)
                best[side] = min(best[side], seconds)
        a, b = _answers(out["medmoe"]), _answers(out["hf"])
        diff = max((abs(float(x) - float(y)) if not isinstance(x, str) else (0.0 if x == y else math.inf) for x, y in zip(a, b)), default=math.inf)
        ratio = best["medmoe"] / best["hf"]
        effective = out["medmoe"]["config"]["medmoe_profile"]["experts"]["biomedical"]["batch"]["effective"]
        figures[batch_size] = {"hf_s": best["hf"], "medmoe_s": best["medmoe"], "ratio": ratio, "max_abs_diff": diff, "effective": effective}
        checks.append(
            Check(f"--batch_size {batch_size}: wall ratio <= 1.05", ratio <= 1.05, f"hf {best['hf']:.2f} s, medmoe {best['medmoe']:.2f} s, ratio {ratio:.3f}")
        )
        checks.append(
            Check(f"--batch_size {batch_size}: same log-likelihoods", len(a) == len(b) and diff <= 1e-5, f"max |diff| {diff:.1e}, effective {effective}")
        )
    return checks, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=16, help="documents per task")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        console.print("[red]no CUDA device is visible: this check needs an NVIDIA GPU[/]")
        return 2
    console.print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    checks, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label, step in (
            ("nvml", lambda: check_nvml()),
            ("harness", lambda: check_harness(root, build(root, "small", seed=0), args.limit)),
            (
                "memory",
                lambda: check_memory(root, root / "small", build(root, "big", hidden_size=256, num_layers=4, intermediate_size=768, seed=1), args.limit),
            ),
            ("batching", lambda: check_batching(root, root / "big", args.limit)),
        ):
            with console.status(f"checking {label}..."):
                found, figs = step()
            checks += found
            figures[label] = figs
    table = Table(title="GPU check")
    for column in ("check", "result", "figures"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]PASS[/]" if c.ok else "[red]FAIL[/]", c.detail)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"checks": [asdict(c) for c in checks], "figures": figures}, indent=2, default=str))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

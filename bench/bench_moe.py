"""Overhead of the ``medmoe`` adapter against lm-eval's own ``hf`` model on tiny local models.

    python bench/bench_moe.py [--limit 20] [--repeats 3]

1. One expert: ``medmoe`` (profiling on, and off) vs ``hf`` on the same model and task suite;
   wall-time ratio, target <= 1.05.
2. Three experts behind the oracle router over the three domains' tasks vs the three ``hf``
   runs added up; target <= 1.05, with each expert's load count (each must load once).
3. The batch size reaches the expert: one expert vs ``hf`` at the same ``--batch_size`` (16 and
   auto), wall-time ratio <= 1.05 and the largest difference between the two runs'
   per-request log-likelihoods (target <= 1e-5), with the expert's effective batch size.

Wall time includes model loading, as a user experiences it; the best of ``--repeats`` runs is
kept for each side, and the sides take turns, so that a busy machine penalises neither.

Like with like: ``hf`` does the evaluation and nothing else, so the ratios are taken with
``probe=0`` (the profiler on, its single-stream serving probe off). The probe is extra
measurement a default ``medmoe`` run does on top (``prompts + 1`` short answers per task, a fixed
cost that a ``--limit 20`` run on a tiny model is mostly made of); each section prints what the
default run took and how much of it the probe's own ``probe_s`` accounts for.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import lm_eval
import yaml

from medmoe_lm_eval._lmeval_hook import register
from medmoe_lm_eval.benchmarks.splits import domain_texts
from medmoe_lm_eval.demo.runs import task_manager
from medmoe_lm_eval.testing.tiny import TinySpec, build_model, train_tokenizer

SUITE = ["medmoe_medmcqa", "medmoe_pubmedqa", "medmoe_legal_ruleqa", "medmoe_ppl_biomedical", "medmoe_ppl_legal", "medmoe_ppl_code"]
#: best CPU seconds per run name of the last ``timed`` call
CPU_S: dict[str, float] = {}
DOMAIN_TASKS = {"biomedical": ["medmoe_medmcqa", "medmoe_ppl_biomedical"], "legal": ["medmoe_legal_ruleqa", "medmoe_ppl_legal"], "code": ["medmoe_ppl_code"]}


def build(folder: Path) -> dict[str, Path]:
    texts = [t for d in DOMAIN_TASKS for t in domain_texts(d, "train")[:300]]
    tok = train_tokenizer(texts, folder / "tok", vocab_size=2048)
    out = {}
    for seed, domain in enumerate(DOMAIN_TASKS, start=1):
        path = folder / domain
        build_model(tok, TinySpec(hidden_size=128, num_layers=3, intermediate_size=384, seed=seed)).save_pretrained(str(path))
        tok.save_pretrained(str(path))
        out[domain] = path
    return out


def timed(
    runs: dict[str, tuple[str, dict, list[str]]], limit: int, repeats: int, batch_size: int | str = 8, log_samples: bool = False
) -> tuple[dict[str, float], dict[str, dict]]:
    """Best wall time and last results of each ``name: (model, model_args, tasks)`` run.

    The runs take turns, repeat by repeat, so a machine that gets busier or quieter during the
    benchmark shifts every side alike instead of whichever happened to run last. The best CPU
    time of each (this process, all its threads) goes into ``CPU_S``: on a machine shared with
    other work, wall time measures the neighbours as much as the code.
    """
    best, results = dict.fromkeys(runs, float("inf")), {}
    for _ in range(repeats):
        for name, (model, model_args, tasks) in runs.items():
            started, cpu = time.perf_counter(), time.process_time()
            results[name] = lm_eval.simple_evaluate(
                model=model,
                model_args=model_args,
                tasks=tasks,
                task_manager=task_manager(),
                limit=limit,
                batch_size=batch_size,
                device="cpu",
                bootstrap_iters=0,
                log_samples=log_samples,
            )
            best[name] = min(best[name], time.perf_counter() - started)
            CPU_S[name] = min(CPU_S.get(name, float("inf")), time.process_time() - cpu)
    return best, results


def probe_seconds(results: dict) -> float:
    """What the serving probe spent over all tasks of a run (warm-ups included), from its profile."""
    stream = results["config"]["medmoe_profile"].get("single_stream") or {}
    return sum(task.get("probe_s") or 0.0 for task in stream.values())


def default_line(best: dict[str, float], results: dict[str, dict]) -> str:
    """The default run (probe on) against ``hf``, with the probe's share, for the reader to judge."""
    default, hf, probe = best["default"], best["hf"], probe_seconds(results["default"])
    return f"              with the default serving probe: medmoe {default:.2f} s (ratio {default / hf:.3f}), of which the probe {probe:.2f} s"


def responses(results: dict) -> list:
    """Every request's answer in (task, document, option) order: log-likelihoods or generated text."""
    out = []
    for task in sorted(results["samples"]):
        for sample in sorted(results["samples"][task], key=lambda s: s["doc_id"]):
            for resp in sample["resps"]:
                value = resp[0]
                out.append(value[0] if isinstance(value, list | tuple) else value)
    return out


def max_difference(a: dict, b: dict) -> float:
    """Largest absolute difference of two runs' log-likelihoods; infinite if any text differs."""
    ra, rb = responses(a), responses(b)
    if len(ra) != len(rb):
        return float("inf")
    diffs = [abs(float(x) - float(y)) if not isinstance(x, str) else (0.0 if x == y else float("inf")) for x, y in zip(ra, rb)]
    return max(diffs, default=0.0)


def batch_comparison(model: Path, single: str, limit: int, repeats: int) -> None:
    """Section 3: the same ``--batch_size`` for ``hf`` and the one-expert candidate."""
    for batch_size in ("16", "auto"):
        runs = {
            "hf": ("hf", {"pretrained": str(model)}, SUITE),
            "medmoe": ("medmoe", {"adapter": single, "probe": 0}, SUITE),
            "default": ("medmoe", {"adapter": single}, SUITE),
        }
        CPU_S.clear()
        best, res = timed(runs, limit, repeats, batch_size=batch_size, log_samples=True)
        effective = res["medmoe"]["config"]["medmoe_profile"]["experts"]["m"]["batch"]["effective"]
        print(
            f"--batch_size {batch_size:>4}: hf {best['hf']:.2f} s · medmoe {best['medmoe']:.2f} s (ratio {best['medmoe'] / best['hf']:.3f}, target <= 1.05) · "
            f"max |Δ loglikelihood| {max_difference(res['medmoe'], res['hf']):.1e} (target <= 1e-5) · effective batch {effective}"
        )
        print(f"                  CPU time: hf {CPU_S['hf']:.2f} s · medmoe {CPU_S['medmoe']:.2f} s (ratio {CPU_S['medmoe'] / CPU_S['hf']:.3f})")
        print(default_line(best, res))


def adapter(folder: Path, name: str, data: dict) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return str(path)


def one_expert(bio: Path, single: str, limit: int, repeats: int) -> None:
    """Section 1: profiling on (probe off) and off against ``hf``, then the default run."""
    runs = {
        "hf": ("hf", {"pretrained": str(bio)}, SUITE),
        "on": ("medmoe", {"adapter": single, "probe": 0}, SUITE),
        "off": ("medmoe", {"adapter": single, "profile": False}, SUITE),
        "default": ("medmoe", {"adapter": single}, SUITE),
    }
    best, res = timed(runs, limit, repeats)
    hf, on, off = best["hf"], best["on"], best["off"]
    print(
        f"one expert  : hf {hf:.2f} s · medmoe {on:.2f} s (ratio {on / hf:.3f}, target <= 1.05) · medmoe without profiling {off:.2f} s (ratio {off / hf:.3f})"
    )
    print(default_line(best, res))


def three_experts(folder: Path, models: dict[str, Path], limit: int, repeats: int) -> None:
    """Section 2: the oracle mixture against the three ``hf`` runs added up."""
    experts = [{"name": d, "domain": d, "model": str(p), "device": "cpu", "batch_size": 8} for d, p in models.items()]
    oracle = adapter(folder, "oracle", {"kind": "moe", "experts": experts, "router": {"type": "oracle"}})
    tasks = [t for ts in DOMAIN_TASKS.values() for t in ts]
    runs = {d: ("hf", {"pretrained": str(models[d])}, ts) for d, ts in DOMAIN_TASKS.items()}
    best, res = timed({**runs, "moe": ("medmoe", {"adapter": oracle, "probe": 0}, tasks)}, limit, repeats)  # like with like
    t_hf3, t_moe = sum(best[d] for d in runs), best["moe"]
    loads = res["moe"]["config"]["medmoe"]["expert_loads"]
    print(f"three experts: 3 x hf {t_hf3:.2f} s · medmoe oracle {t_moe:.2f} s (ratio {t_moe / t_hf3:.3f}, target <= 1.05) · expert loads {loads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-batch", action="store_true", help="run section 3 only")
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    register()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = build(folder)
        bio = models["biomedical"]
        single = adapter(folder, "one", {"kind": "single", "experts": [{"name": "m", "model": str(bio), "device": "cpu", "batch_size": 8}]})
        if not args.only_batch:
            one_expert(bio, single, args.limit, args.repeats)
            three_experts(folder, models, args.limit, args.repeats)
        batch_comparison(bio, single, args.limit, args.repeats)


if __name__ == "__main__":
    main()

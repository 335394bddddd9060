"""Overhead of the ``medmoe`` adapter against lm-eval's own ``hf`` model on tiny local models.

    python bench/bench_moe.py [--limit 20] [--repeats 3]

1. One expert: ``medmoe`` (profiling on, and off) vs ``hf`` on the same model and task suite;
   wall-time ratio, target <= 1.05.
2. Three experts behind the oracle router over the three domains' tasks vs the three ``hf``
   runs added up; target <= 1.05, with each expert's load count (each must load once).

Wall time includes model loading, as a user experiences it; the best of ``--repeats`` runs is
kept for each side, and the sides take turns, so that a busy machine penalises neither.
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
from medmoe_lm_eval.demo.tiny import TinySpec, build_model, train_tokenizer

SUITE = ["medmoe_medmcqa", "medmoe_pubmedqa", "medmoe_legal_ruleqa", "medmoe_ppl_biomedical", "medmoe_ppl_legal", "medmoe_ppl_code"]
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


def timed(runs: dict[str, tuple[str, dict, list[str]]], limit: int, repeats: int) -> tuple[dict[str, float], dict[str, dict]]:
    """Best wall time and last results of each ``name: (model, model_args, tasks)`` run.

    The runs take turns, repeat by repeat, so a machine that gets busier or quieter during the
    benchmark shifts every side alike instead of whichever happened to run last.
    """
    best, results = dict.fromkeys(runs, float("inf")), {}
    for _ in range(repeats):
        for name, (model, model_args, tasks) in runs.items():
            started = time.perf_counter()
            results[name] = lm_eval.simple_evaluate(
                model=model, model_args=model_args, tasks=tasks, task_manager=task_manager(), limit=limit, batch_size=8, device="cpu", bootstrap_iters=0
            )
            best[name] = min(best[name], time.perf_counter() - started)
    return best, results


def adapter(folder: Path, name: str, data: dict) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    register()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = build(folder)
        bio = models["biomedical"]
        single = adapter(folder, "one", {"kind": "single", "experts": [{"name": "m", "model": str(bio), "device": "cpu", "batch_size": 8}]})
        best, _ = timed(
            {
                "hf": ("hf", {"pretrained": str(bio)}, SUITE),
                "on": ("medmoe", {"adapter": single}, SUITE),
                "off": ("medmoe", {"adapter": single, "profile": False}, SUITE),
            },
            args.limit,
            args.repeats,
        )
        hf, on, off = best["hf"], best["on"], best["off"]
        print(
            f"one expert  : hf {hf:.2f} s · medmoe {on:.2f} s (ratio {on / hf:.3f}, target <= 1.05) · medmoe without profiling {off:.2f} s (ratio {off / hf:.3f})"
        )

        experts = [{"name": d, "domain": d, "model": str(p), "device": "cpu", "batch_size": 8} for d, p in models.items()]
        oracle = adapter(folder, "oracle", {"kind": "moe", "experts": experts, "router": {"type": "oracle"}})
        tasks = [t for ts in DOMAIN_TASKS.values() for t in ts]
        runs = {d: ("hf", {"pretrained": str(models[d])}, ts) for d, ts in DOMAIN_TASKS.items()}
        best, res = timed({**runs, "moe": ("medmoe", {"adapter": oracle}, tasks)}, args.limit, args.repeats)
        t_hf3, t_moe = sum(best[d] for d in runs), best["moe"]
        loads = res["moe"]["config"]["medmoe"]["expert_loads"]
        print(f"three experts: 3 x hf {t_hf3:.2f} s · medmoe oracle {t_moe:.2f} s (ratio {t_moe / t_hf3:.3f}, target <= 1.05) · expert loads {loads}")


if __name__ == "__main__":
    main()

"""Overhead of the ``medmoe`` adapter against lm-eval's own ``hf`` model on tiny local models.

    python bench/bench_moe.py [--limit 20] [--repeats 3]

1. One expert: ``medmoe`` (profiling on, and off) vs ``hf`` on the same model and task suite;
   wall-time ratio, target <= 1.05.
2. Three experts behind the oracle router over the three domains' tasks vs the three ``hf``
   runs added up; target <= 1.05, with each expert's load count (each must load once).

Wall time includes model loading, as a user experiences it; the best of ``--repeats`` runs is
kept for each side so that a busy machine penalises neither.
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
from medmoe_lm_eval.runs import task_manager
from medmoe_lm_eval.sources import domain_texts
from medmoe_lm_eval.tiny import TinySpec, build_model, train_tokenizer

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


def timed(model: str, model_args: dict, tasks: list[str], limit: int, repeats: int) -> tuple[float, dict]:
    best, results = float("inf"), {}
    for _ in range(repeats):
        started = time.perf_counter()
        results = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=tasks, task_manager=task_manager(), limit=limit, batch_size=8, device="cpu", bootstrap_iters=0)
        best = min(best, time.perf_counter() - started)
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
        t_hf, _ = timed("hf", {"pretrained": str(bio)}, SUITE, args.limit, args.repeats)
        t_on, _ = timed("medmoe", {"adapter": single}, SUITE, args.limit, args.repeats)
        t_off, _ = timed("medmoe", {"adapter": single, "profile": False}, SUITE, args.limit, args.repeats)
        print(f"one expert  : hf {t_hf:.2f} s · medmoe {t_on:.2f} s (ratio {t_on / t_hf:.3f}, target <= 1.05) · medmoe without profiling {t_off:.2f} s (ratio {t_off / t_hf:.3f})")

        experts = [{"name": d, "domain": d, "model": str(p), "device": "cpu", "batch_size": 8} for d, p in models.items()]
        oracle = adapter(folder, "oracle", {"kind": "moe", "experts": experts, "router": {"type": "oracle"}})
        tasks = [t for ts in DOMAIN_TASKS.values() for t in ts]
        t_hf3 = sum(timed("hf", {"pretrained": str(models[d])}, ts, args.limit, args.repeats)[0] for d, ts in DOMAIN_TASKS.items())
        t_moe, res = timed("medmoe", {"adapter": oracle}, tasks, args.limit, args.repeats)
        loads = res["config"]["medmoe"]["expert_loads"]
        print(f"three experts: 3 x hf {t_hf3:.2f} s · medmoe oracle {t_moe:.2f} s (ratio {t_moe / t_hf3:.3f}, target <= 1.05) · expert loads {loads}")


if __name__ == "__main__":
    main()

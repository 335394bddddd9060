"""Router benchmark: accuracy on the held-out split of the bundled data and routing time per query.

    python bench/bench_router.py [--router model_adapters/routers/default_router.joblib]

Targets: accuracy >= 0.97 over the three domains; <= 0.2 ms median per query on one CPU core
(routed in batches of 64, as evaluation routes them). Single-query latency is printed too.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one CPU core, as the target says

from rich.console import Console

from medmoe_lm_eval.cli.router import render
from medmoe_lm_eval.harness.routing.evaluation import evaluate_router
from medmoe_lm_eval.harness.routing.training import bundled_examples
from medmoe_lm_eval.paths import bundled_adapters_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--router", default=str(bundled_adapters_dir() / "routers" / "default_router.joblib"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    report = evaluate_router(args.router, bundled_examples("heldout"))
    Console().print(render(report))
    print(f"accuracy {report['accuracy']:.4f} (target >= 0.97) · macro-F1 {report['macro_f1']:.4f}")
    print(f"median {report['median_ms_per_query']:.3f} ms/query batched (target <= 0.2) · {report['median_ms_single_query']:.3f} ms single query")


if __name__ == "__main__":
    main()

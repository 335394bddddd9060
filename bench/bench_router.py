"""Router benchmark: accuracy on queries the router never saw, and routing time per query.

    python bench/bench_router.py [--router model_adapters/routers/default_router.json] [--data ../shared/data]

With a data release folder (``--data``), the queries are its unseen queries of all three domains
(``benchmarks/router_corpus.py``: 12,353 rows disjoint from both the shipped and the bundled router's
training rows and, code apart, from the bundle); without one, the bundled samples' held-out split.
Targets (issue 26): accuracy >= 0.995 and recall >= 0.99 per domain for the shipped router, >= 0.97
for one trained on the bundled samples alone; routing time is printed per query on one CPU core,
routed in batches of 64 as evaluation routes them, and one at a time. Also printed: what an
uncertainty threshold would do, the share of queries sent to the fallback expert and the accuracy
of the rest.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one CPU core, as the target says

import numpy as np
from rich.console import Console

from medmoe_lm_eval.benchmarks.router_corpus import corpus, is_release_folder
from medmoe_lm_eval.cli.router_training import render
from medmoe_lm_eval.harness.routing.evaluation import evaluate_router
from medmoe_lm_eval.harness.routing.scorers import load_scorer
from medmoe_lm_eval.harness.routing.training import bundled_examples
from medmoe_lm_eval.paths import bundled_adapters_dir

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _fallback_lines(router: str, rows: list[dict[str, str]], thresholds: tuple[float, ...] = (0.6, 0.8)) -> list[str]:
    scorer = load_scorer(router)
    probs = scorer.predict_proba([r["text"] for r in rows])
    right = np.array([scorer.domains[i] == r["domain"] for i, r in zip(probs.argmax(axis=1), rows)])
    lines = []
    for t in thresholds:
        sure = probs.max(axis=1) >= t
        lines.append(f"threshold {t}: {1 - sure.mean():.2%} of queries to the fallback · accuracy of the routed rest {right[sure].mean():.4f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--router", default=str(bundled_adapters_dir() / "routers" / "default_router.json"))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a data release folder (else the bundled held-out split)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    release = Path(args.data)
    if is_release_folder(release):
        rows, label = corpus(release, "unseen"), f"unseen queries of {release}"
    else:
        rows, label = bundled_examples("heldout"), "bundled held-out split (no data release folder found)"
    report = evaluate_router(args.router, rows)
    Console().print(render(report))
    print(f"queries: {label}")
    recall = " · ".join(f"{d} {v:.4f}" for d, v in report["accuracy_per_domain"].items())
    print(f"accuracy {report['accuracy']:.4f} (target >= 0.995) · macro-F1 {report['macro_f1']:.4f} · recall per domain {recall} (target >= 0.99)")
    print(f"median {report['median_ms_per_query']:.3f} ms/query batched · {report['median_ms_single_query']:.3f} ms single query")
    for line in _fallback_lines(args.router, rows):
        print(line)


if __name__ == "__main__":
    main()

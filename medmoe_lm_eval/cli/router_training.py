"""``medmoe train-router`` and ``medmoe eval-router``: make a domain router and judge it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from medmoe_lm_eval.benchmarks.splits import Split
from medmoe_lm_eval.console import cli_console
from medmoe_lm_eval.harness.routing import evaluation, training


def _rows(data: str, split: Split) -> list[dict[str, str]]:
    """``bundled`` = the bundled samples' train or heldout rows; a data release folder = its
    training rows or the evaluation rows never trained on (``unseen``); else a JSONL file."""
    if data == "bundled":
        return training.bundled_examples(split)
    if Path(data).is_dir():
        from medmoe_lm_eval.benchmarks.router_corpus import corpus

        rows = corpus(data, "train" if split == "train" else "unseen")
        return rows if split != "train" else [{"text": r["text"], "domain": r["domain"]} for r in rows]
    return training.read_examples(data)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help='a data release folder (the shipped router: every split no task evaluates), JSONL rows {"text", "domain"}, or \'bundled\' for the bundled samples\' train split',
    )
    parser.add_argument("--out", required=True, help="router file (.json), or a folder with --model")
    parser.add_argument("--holdout", type=float, default=0.1, help="with a release folder: share of training rows held back to report accuracy on")
    parser.add_argument("--model", help="fine-tune this transformers model (path) as a sequence classifier instead of TF-IDF")
    parser.add_argument("--epochs", type=int, default=2, help="with --model: passes over the data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-data", help="also write the training rows used to this JSONL file")


def run_train(args: argparse.Namespace) -> int:
    rows = _rows(args.data, "train")
    if args.write_data:
        Path(args.write_data).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if args.model:
        report = training.train_transformers(rows, args.model, args.out, epochs=args.epochs, seed=args.seed)
    elif Path(args.data).is_dir():
        report = training.train_release_router(args.data, args.out, holdout_share=args.holdout, seed=args.seed)
        Path(f"{args.out}.report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    else:
        report = training.train_classifier(rows, args.out, seed=args.seed)
        Path(f"{args.out}.report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    cli_console().print(f"trained router -> {args.out}\n{json.dumps(report, indent=2)}")
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--router", required=True, help="a router file or folder made by `medmoe train-router`")
    parser.add_argument(
        "--data", required=True, help='JSONL rows {"text", "domain"}, \'bundled\' for the held-out split, or a data release folder (its evaluation rows)'
    )
    parser.add_argument("--json", help="also write the report to this JSON file")


def render(report: dict[str, Any]) -> Group:
    """Headline, recall per domain, confusion matrix, speed line. The lines sit outside the table: as its title and
    caption they would wrap to the table's own width (48 columns for three domains)."""
    table = Table()
    table.add_column("gold \\ predicted", style="bold")
    for label in report["labels"]:
        table.add_column(label, justify="right")
    for label, row in zip(report["labels"], report["confusion"]):
        table.add_row(label, *[str(v) for v in row])
    title = f"router: accuracy {report['accuracy']:.4f} · macro-F1 {report['macro_f1']:.4f} · {report['rows']} rows"
    recall = "recall per domain: " + " · ".join(f"{d} {v:.4f}" for d, v in report["accuracy_per_domain"].items())
    speed = f"median routing time {report['median_ms_per_query']:.3f} ms/query in batches of 64 (as in evaluation), {report['median_ms_single_query']:.3f} ms one query at a time"
    return Group(Text(title, style="bold"), Text(recall), table, Text(speed, style="dim"))


def run_eval(args: argparse.Namespace) -> int:
    report = evaluation.evaluate_router(args.router, _rows(args.data, "heldout"))
    cli_console().print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0

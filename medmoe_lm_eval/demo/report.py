"""The demo's closing report: rankings, perplexities, the checks a working pipeline passes, the disclaimer.

The checks are statements a reader can verify, printed with a tick or a cross so a broken pipeline
is visible at a glance. On the tiny models: each expert beats the generalist on its own domain,
the trained router is close to the oracle, quantized copies are ordered by precision. On the real
models (``report_real`` adds the fidelity table and the router scorecard): SmolLM2 is far from a
random model, its llama.cpp file agrees with its dequantized parent, q8_0 is more faithful than q4_0.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medmoe_lm_eval.benchmarks.domains import DOMAINS

QUANT_TOLERANCE = 0.001
#: rows per use-case table in the report (the board and ``medmoe rank`` show all)
RANK_TOP = 5


def perplexities(runs: dict[str, Path]) -> dict[str, dict[str, float]]:
    """word perplexity per candidate and domain, read back from the stored results."""
    table: dict[str, dict[str, float]] = {}
    for name, path in runs.items():
        results = json.loads(path.read_text(encoding="utf-8"))["results"]
        for domain in DOMAINS:
            row = results.get(f"medmoe_ppl_{domain}", {})
            if "word_perplexity,none" in row:
                table.setdefault(name, {})[domain] = float(row["word_perplexity,none"])
    return table


def expectations(ppl: dict[str, dict[str, float]]) -> list[tuple[str, bool | None]]:
    """What a correct pipeline shows on these models; ``None`` where a candidate was not run."""
    checks: list[tuple[str, bool | None]] = []
    gen = ppl.get("generalist", {})
    for d in DOMAINS:
        own = ppl.get(f"expert-{d}", {}).get(d)
        checks.append((f"{d} expert beats the generalist on {d} perplexity", None if own is None or d not in gen else own < gen[d]))
    top1, oracle = ppl.get("moe-top1", {}), ppl.get("moe-oracle", {})
    if top1 and oracle:
        # on the log scale (nats per word): one misrouted document must not count as a failure
        worst = max(math.log(top1[d]) / math.log(oracle[d]) for d in DOMAINS if d in top1 and d in oracle)
        checks.append((f"trained-router mixture within 5% of the oracle router in log-perplexity (worst ratio {worst:.3f})", worst <= 1.05))
    else:
        checks.append(("trained-router mixture close to the oracle router", None))
    quant = [q for q in (ppl.get(f"generalist-gguf-{t}") for t in ("f16", "q8_0", "q4_0")) if q]
    if len(quant) == 3:
        # mean log-perplexity (nats per word) over the domains; raw perplexities would let the
        # domain a model is worst at decide alone. Tiny models lose very little to quantization,
        # so the order is checked within QUANT_TOLERANCE (relative) of run-to-run rounding noise.
        mean = [sum(math.log(v) for v in q.values()) / len(q) for q in quant]
        ordered = all(a <= b * (1 + QUANT_TOLERANCE) for a, b in itertools.pairwise(mean))
        checks.append((f"GGUF log-perplexity f16 <= q8_0 <= q4_0 within {QUANT_TOLERANCE:.1%} ({' <= '.join(f'{m:.4f}' for m in mean)})", ordered))
    else:
        checks.append(("GGUF perplexity f16 <= q8_0 <= q4_0", None))
    return checks


def print_report(out: Path, runs: dict[str, Path], console: Console, tiny: bool = False) -> None:
    from medmoe_lm_eval.analysis.board_export import rank_tables

    for table in rank_tables(out, top=RANK_TOP, why=False, width=console.width):
        console.print(table)
    console.print(f"[dim]top {RANK_TOP} per use case; every candidate, and what carried each rank: medmoe rank --results {out}[/]", soft_wrap=True)
    ppl = perplexities(runs)
    _print_perplexities(ppl, console)
    if tiny:
        checks, disclaimer = expectations(ppl), DISCLAIMER
    else:
        from medmoe_lm_eval.demo.report_real import print_real_sections

        checks, disclaimer = print_real_sections(out, ppl, console), REAL_DISCLAIMER
    for text, ok in checks:
        mark = "[dim]-[/]" if ok is None else ("[green]✓[/]" if ok else "[red]✗[/]")
        console.print(f" {mark} {text}")
    console.print(f"[yellow]{disclaimer}[/]")


def _print_perplexities(ppl: dict[str, dict[str, float]], console: Console) -> None:
    if ppl:
        console.print("word perplexity on held-out domain text (lower is better)", style="italic")  # as a title it wraps to the table's width
        table = Table()
        table.add_column("candidate")
        for d in DOMAINS:
            table.add_column(d, justify="right")
        for name, row in ppl.items():
            best = {d: min(r.get(d, float("inf")) for r in ppl.values()) for d in DOMAINS}
            table.add_row(name, *[("[bold green]" if row.get(d) == best[d] else "") + (f"{row[d]:.1f}" if d in row else "-") for d in DOMAINS])
        console.print(table)


REAL_DISCLAIMER = (
    "These figures are real measurements of two small models (135 M and 270 M parameters) on a few items per task of "
    "the bundled benchmark samples: they rank these candidates on this machine, say little about larger models, "
    "and nothing here is medical or legal advice."
)
DISCLAIMER = (
    "These are tiny models trained for seconds on a CPU to demonstrate the evaluation pipeline. "
    "Their figures say nothing about real model quality and nothing here is medical or legal advice."
)

"""The real demo's report sections: the models and their licences, each copy's fidelity, the router's scorecard.

The tables are summaries sized for one screen: a copy's figures pooled over the multiple-choice
tasks (``medmoe fidelity`` has them per task with intervals), a mixture's scorecard as its headline
figures and confusion matrix (``medmoe routing`` has the per-task regrets). The checks that follow
are what two real models must show whatever their accuracy: a language model far from a random
one, a llama.cpp file agreeing with its own dequantized weights, q8_0 closer to the parent than q4_0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2
from medmoe_lm_eval.real_models import ModelFile

#: SmolLM2's vocabulary: a random model's word perplexity is at least this (each word is one token or more)
SMOLLM2_VOCAB = 49152
#: the upstream Q4_1 file and its dequantized copy hold the same weights; only the kernels differ
SAME_WEIGHTS_AGREEMENT = 0.9
ROUTING_TARGET = 0.9


def print_models(files: Iterable[ModelFile], console: Console) -> None:
    """Each real model file with its licence and the terms file its package ships."""
    for f in files:
        terms = f" (terms: {f.license_file})" if f.license_file else ""
        console.print(f"[bold]{f.name}[/]: {f.path} · {f.license}{terms}", soft_wrap=True)


def fidelity_summary(out: Path) -> pd.DataFrame:
    """The fidelity rows of the results in ``out``, pooled per copy (:func:`pool_fidelity`)."""
    from medmoe_lm_eval.analysis.fidelity import fidelity, fidelity_table
    from medmoe_lm_eval.store.results import load_results

    return pool_fidelity(fidelity_table(fidelity(load_results(out))[0]))


def pool_fidelity(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per copy from per-task rows: agreement and mean KL over the multiple-choice tasks
    weighted by their paired items (so a task with more items counts more), flips summed, the
    worst task's KL p99, and the geometric mean of the perplexity ratios; sorted by mean KL."""
    if rows.empty:
        return rows
    choice = rows[rows["kl_mean"].notna()]
    summary = (
        pd.DataFrame(index=pd.Index([], name="candidate"))
        if choice.empty
        else choice.groupby("candidate").apply(
            lambda g: pd.Series(
                {
                    "parent": g["parent"].iloc[0],
                    "items": int(g["n_paired"].sum()),
                    "agreement": float((g["agreement"] * g["n_paired"]).sum() / g["n_paired"].sum()),
                    "c→w": int(g["flips_correct_to_wrong"].sum()),
                    "w→c": int(g["flips_wrong_to_correct"].sum()),
                    "KL mean": float((g["kl_mean"] * g["n_paired"]).sum() / g["n_paired"].sum()),
                    "KL max p99": float(g["kl_p99"].max()),
                }
            ),
            include_groups=False,
        )
    )
    ppl = rows[rows["ppl_ratio"].notna()].groupby("candidate")["ppl_ratio"].apply(lambda r: float(math.exp(r.map(math.log).mean())))
    pooled = summary.join(ppl.rename("ppl ratio"), how="outer")
    return pooled.sort_values("KL mean") if "KL mean" in pooled.columns else pooled  # perplexity tasks alone have no KL


def _print_fidelity(summary: pd.DataFrame, out: Path, console: Console) -> None:
    if summary.empty:
        console.print("[dim]no copy shares documents with its parent: no fidelity figures[/]")
        return
    parents = set(summary["parent"].dropna()) if "parent" in summary.columns else set()
    shared = len(parents) == 1 and summary["parent"].notna().all()
    shown = summary.drop(columns="parent") if shared else summary
    to_whom = f"its parent {next(iter(parents))}" if shared else "its parent"
    console.print(f"fidelity of each copy to {to_whom}, pooled over the multiple-choice items", style="italic")
    table = Table()
    for column in ("copy", *shown.columns):
        named = column in ("copy", "parent")
        table.add_column(column, justify="left" if named else "right", no_wrap=named)  # names whole: the figures give way
    for copy, row in shown.iterrows():
        table.add_row(str(copy), *(_cell(column, v) for column, v in row.items()))
    console.print(table)
    console.print(f"[dim]per task, with 95% intervals: medmoe fidelity --results {out}[/]", soft_wrap=True)


def _cell(column: object, value: object) -> str:
    """Counts as integers, the agreement as a share with three decimals, the rest to 3 significant digits."""
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    if column == "agreement" and isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, float) and value.is_integer() and column in ("items", "c→w", "w→c"):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _print_scorecard(out: Path, console: Console) -> float:
    """The routed mixture's headline figures and confusion matrix; its routing accuracy (NaN if none ran)."""
    from medmoe_lm_eval.analysis.routing import mixture_candidates
    from medmoe_lm_eval.analysis.scorecard import scorecard
    from medmoe_lm_eval.store.results import load_results

    results = load_results(out)
    if "moe-router" not in mixture_candidates(results):
        return math.nan
    card = scorecard(results, "moe-router")
    regrets = [t.regret for t in card.tasks if math.isfinite(t.regret)]
    mean_regret = f"{sum(regrets) / len(regrets):+.3f}" if regrets else "—"
    console.print(
        f"router scorecard, moe-router: routing accuracy {_cell(None, card.routing_accuracy)} · oracle {card.oracle_candidate or '(none)'}"
        f" · mean regret (oracle - router) {mean_regret} · best single expert {card.best_single or '(none)'} · gap recovered {_cell(None, card.gap_recovered)}"
        f" · router {_cell(None, card.router_ms_p50)} ms/decision (p50)",
        style="italic",
    )
    if not card.confusion.empty:
        table = Table(title="requests: task domain (rows) x routed domain (columns)")
        table.add_column("task domain")
        for column in card.confusion.columns:
            table.add_column(str(column), justify="right")
        for domain, row in card.confusion.iterrows():
            table.add_row(str(domain), *(str(int(v)) for v in row))
        console.print(table)
    console.print(f"[dim]per task regret with 95% intervals: medmoe routing --results {out} --candidate moe-router[/]", soft_wrap=True)
    return card.routing_accuracy


def print_real_sections(out: Path, ppl: dict[str, dict[str, float]], console: Console) -> list[tuple[str, bool | None]]:
    """The fidelity table and the scorecard; returns the checks the report ends with."""
    summary = fidelity_summary(out)
    _print_fidelity(summary, out, console)
    routing = _print_scorecard(out, console)
    return real_checks(ppl, summary, routing)


def real_checks(ppl: dict[str, dict[str, float]], fidelity: pd.DataFrame, routing: float) -> list[tuple[str, bool | None]]:
    """What two real models must show, ``None`` where the candidates needed were not run."""
    checks: list[tuple[str, bool | None]] = []
    parent = ppl.get(PARENT, {}).get("biomedical")
    checks.append(
        (
            f"SmolLM2 reads medical text as a language model: word perplexity {parent:.1f} < {SMOLLM2_VOCAB:,} (a random model's is at least its vocabulary)"
            if parent
            else "SmolLM2 reads medical text better than a random model",
            None if parent is None else parent < SMOLLM2_VOCAB,
        )
    )
    agree = fidelity["agreement"].get(SMOLLM2) if "agreement" in fidelity else None
    checks.append(
        (
            f"the upstream Q4_1 file (llama.cpp) and its dequantized parent (transformers) pick the same answer on >= {SAME_WEIGHTS_AGREEMENT:.0%} of items"
            + (f" ({agree:.1%})" if agree is not None and math.isfinite(agree) else ""),
            None if agree is None or not math.isfinite(agree) else agree >= SAME_WEIGHTS_AGREEMENT,
        )
    )
    kl = fidelity["KL mean"] if "KL mean" in fidelity else pd.Series(dtype=float)
    q8, q4 = kl.get(COPY_NAMES["gguf-q8_0"]), kl.get(COPY_NAMES["gguf-q4_0"])
    known = q8 is not None and q4 is not None and math.isfinite(q8) and math.isfinite(q4)
    checks.append(
        (
            f"q8_0 is closer to the parent than q4_0 (mean KL {q8:.2g} < {q4:.2g})" if known else "q8_0 is closer to the parent than q4_0",
            q8 < q4 if known else None,
        )
    )
    checks.append(
        (
            f"the router sends >= {ROUTING_TARGET:.0%} of requests to their task's domain expert" + (f" ({routing:.1%})" if math.isfinite(routing) else ""),
            routing >= ROUTING_TARGET if math.isfinite(routing) else None,
        )
    )
    return checks

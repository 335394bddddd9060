"""``medmoe demo``: the whole pipeline offline, from bundled texts to a ranked leaderboard.

It builds tiny stand-ins for every kind of candidate (three domain experts and a generalist of
the same size and training budget, trained briefly on the bundled real texts; a trained router;
GPTQ, AWQ and GGUF copies of the generalist; three mixtures), evaluates each through lm-eval on
the bundled task samples and the domain perplexity tasks with profiling on, then prints the
use-case rankings and the perplexity table. Builds are cached, so a second run only evaluates.

These are tiny CPU models demonstrating the pipeline, not medical advice or real model quality.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medmoe_lm_eval import __version__
from medmoe_lm_eval.backends.base import BackendError
from medmoe_lm_eval.console import cli_console
from medmoe_lm_eval.domains import DOMAINS
from medmoe_lm_eval.paths import cache_dir
from medmoe_lm_eval.tiny import TinySpec

DISCLAIMER = (
    "These are tiny models trained for seconds on a CPU to demonstrate the evaluation pipeline. "
    "Their figures say nothing about real model quality and nothing here is medical or legal advice."
)
BENCHMARK_TASKS = ["medmoe_pubmedqa", "medmoe_medmcqa", "medmoe_medquad", "medmoe_legal_ruleqa", "medmoe_lawse", "medmoe_mbpp"]
PPL_TASKS = [f"medmoe_ppl_{d}" for d in DOMAINS]
DEFAULT_TASKS = [*BENCHMARK_TASKS, *PPL_TASKS]
MODELS = ("generalist", *DOMAINS)
DEMO_MAX_GEN_TOKS = 96
QUANT_TOLERANCE = 0.001
QUANT_METHODS = {"gptq": "gptq", "awq": "awq", "gguf-f16": "gguf-f16", "gguf-q8_0": "gguf-q8_0", "gguf-q4_0": "gguf-q4_0"}


@dataclass(frozen=True)
class DemoSettings:
    """What the demo builds; any change gives a new cache folder (nothing stale is reused)."""

    spec: TinySpec = TinySpec(vocab_size=4096, hidden_size=128, num_layers=3, num_heads=4, intermediate_size=384, max_position_embeddings=1024)
    train_steps: int = 150
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    seed: int = 0
    shared_weight: float = 0.3

    def key(self) -> str:
        blob = json.dumps({"settings": asdict(self), "version": __version__, "inputs": _inputs_fingerprint()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _inputs_fingerprint() -> str:
    """What the built artifacts depend on besides the settings: the code that builds them and the data."""
    from medmoe_lm_eval.paths import PACKAGE_DIR, bundled_data_dir

    digest = hashlib.sha256()
    for name in ("sources.py", "router.py", "tiny.py", "quantize.py", "quantization/gptq.py", "quantization/gguf_convert.py"):
        path = PACKAGE_DIR / name
        digest.update(path.read_bytes() if path.is_file() else name.encode())
    for path in sorted(bundled_data_dir().rglob("*.jsonl")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    needs: tuple[str, ...]  # artifacts: model names, "router", or "quant:<method>"
    adapter: Callable[["DemoBuilder"], dict[str, Any]] = field(repr=False, compare=False)


def _single(model: str, path_of: Callable[["DemoBuilder"], Path], backend: str = "hf") -> Callable[["DemoBuilder"], dict[str, Any]]:
    def make(b: DemoBuilder) -> dict[str, Any]:
        expert = {"name": model, "domain": model if model in DOMAINS else "general", "backend": backend, "model": str(path_of(b)), "batch_size": 8}
        if backend == "gguf":
            expert.update(n_ctx=b.settings.spec.max_position_embeddings, n_threads=2)
        return {"kind": "single", "experts": [expert]}

    return make


def _moe(router: dict[str, Any], shared: bool = False) -> Callable[["DemoBuilder"], dict[str, Any]]:
    def make(b: DemoBuilder) -> dict[str, Any]:
        experts = [{"name": d, "domain": d, "model": str(b.model(d)), "batch_size": 8} for d in DOMAINS]
        data: dict[str, Any] = {"kind": "moe", "experts": experts, "router": dict(router)}
        if router["type"] == "classifier":
            data["router"]["path"] = str(b.router())
        if shared:
            experts.append({"name": "generalist", "domain": "general", "model": str(b.model("generalist")), "batch_size": 8})
            data["shared_expert"] = {"name": "generalist", "weight": b.settings.shared_weight}
        return data

    return make


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate("generalist", "tiny generalist trained on an equal mix of the three domains", ("generalist",), _single("generalist", lambda b: b.model("generalist"))),
        *[Candidate(f"expert-{d}", f"tiny {d} expert", (d,), _single(d, lambda b, d=d: b.model(d))) for d in DOMAINS],
        Candidate("generalist-gptq", "generalist, GPTQ 4-bit (gptqmodel)", ("quant:gptq",), _single("generalist", lambda b: b.quantized("gptq"))),
        Candidate("generalist-awq", "generalist, AWQ 4-bit (gptqmodel)", ("quant:awq",), _single("generalist", lambda b: b.quantized("awq"))),
        *[
            Candidate(f"generalist-{m}", f"generalist as GGUF {m.split('-')[1]} (llama.cpp)", (f"quant:{m}",), _single("generalist", lambda b, m=m: b.quantized(m), backend="gguf"))
            for m in ("gguf-f16", "gguf-q8_0", "gguf-q4_0")
        ],
        Candidate("moe-top1", "three experts, trained TF-IDF router, top-1", (*DOMAINS, "router"), _moe({"type": "classifier", "top_k": 1})),
        Candidate("moe-top2-shared", "three experts, trained router, top-2 plus the generalist as shared expert", (*MODELS, "router"), _moe({"type": "classifier", "top_k": 2}, shared=True)),
        Candidate("moe-oracle", "three experts routed by the task's own domain (upper bound)", DOMAINS, _moe({"type": "oracle", "top_k": 1})),
    ]
}


class DemoBuilder:
    """Builds (once) and finds the demo's artifacts under ``<cache>/demo/<settings key>/``."""

    def __init__(self, settings: DemoSettings, root: Path, progress: Progress) -> None:
        self.settings = settings
        self.root = root / "demo" / settings.key()
        self.progress = progress

    def _done(self, path: Path) -> bool:
        return (path / ".complete").is_file() or (path.is_file() and path.with_name(path.name + ".complete").is_file())

    @staticmethod
    def _mark(path: Path) -> None:
        (path / ".complete" if path.is_dir() else path.with_name(path.name + ".complete")).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))

    def _texts(self, name: str) -> list[str]:
        from medmoe_lm_eval.sources import domain_texts

        if name in DOMAINS:
            return domain_texts(name, "train")
        per_domain = [domain_texts(d, "train") for d in DOMAINS]
        n = min(map(len, per_domain))  # equal mix: the same number of texts from each domain
        return [texts[i] for i in range(n) for texts in per_domain]

    def tokenizer(self) -> Path:
        path = self.root / "tokenizer"
        if not self._done(path):
            from medmoe_lm_eval.tiny import train_tokenizer

            task = self.progress.add_task("training the shared BPE tokenizer", total=1)
            shutil.rmtree(path, ignore_errors=True)
            texts = [t for d in DOMAINS for t in self._texts(d)]
            train_tokenizer(texts, path, vocab_size=self.settings.spec.vocab_size, model_max_length=self.settings.spec.max_position_embeddings)
            self._mark(path)
            self.progress.update(task, completed=1)
        return path

    def model(self, name: str) -> Path:
        path = self.root / "models" / name
        if self._done(path):
            return path
        from transformers import AutoTokenizer

        from medmoe_lm_eval.tiny import build_model, train_lm

        s = self.settings
        tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer()))
        task = self.progress.add_task(f"training {name} ({s.train_steps} steps)", total=s.train_steps)
        model = build_model(tokenizer, s.spec)
        train_lm(model, tokenizer, self._texts(name), steps=s.train_steps, batch_size=s.batch_size, seq_len=s.seq_len, lr=s.lr, seed=s.seed, on_step=lambda step, loss: self.progress.update(task, completed=step + 1, description=f"training {name} · loss {loss:.2f}"))
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
        self._mark(path)
        return path

    def router(self) -> Path:
        path = self.root / "router.joblib"
        if not self._done(path):
            from medmoe_lm_eval.router import bundled_examples, train_classifier

            task = self.progress.add_task("training the TF-IDF router", total=1)
            report = train_classifier(bundled_examples("train"), path, seed=self.settings.seed)
            path.with_name("router.report.json").write_text(json.dumps(report, indent=2))
            self._mark(path)
            self.progress.update(task, completed=1)
        return path

    def quantized(self, method: str) -> Path:
        folder = self.root / "quantized" / method
        if self._done(folder):
            return _gguf_file(folder) if method.startswith("gguf") else folder
        from medmoe_lm_eval.quantize import add_quantize_arguments, quantize

        source = self.model("generalist")
        task = self.progress.add_task(f"quantizing the generalist: {method}", total=1)
        shutil.rmtree(folder, ignore_errors=True)
        parser = argparse.ArgumentParser()
        add_quantize_arguments(parser)
        calibration = self.root / "calibration.jsonl"
        if not calibration.is_file():  # the generalist's own training mix
            calibration.write_text("".join(json.dumps({"text": t}) + "\n" for t in self._texts("generalist")), encoding="utf-8")
        args = parser.parse_args(["--model", str(source), "--method", QUANT_METHODS[method], "--calibration", str(calibration), "--n-samples", "64", "--calibration-length", "256", "--out", str(folder)])
        quantize(args)
        self._mark(folder)
        self.progress.update(task, completed=1)
        return _gguf_file(folder) if method.startswith("gguf") else folder

    def build(self, candidate: Candidate) -> dict[str, Any]:
        for need in candidate.needs:
            if need == "router":
                self.router()
            elif need.startswith("quant:"):
                self.quantized(need.split(":", 1)[1])
            else:
                self.model(need)
        return {"name": candidate.name, "description": candidate.description, **candidate.adapter(self)}


def _gguf_file(folder: Path) -> Path:
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .gguf file was written")
    return files[0]


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidates", default="all", help=f"comma-separated subset of: {', '.join(CANDIDATES)} (default all)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated lm-eval tasks or groups (default: the task suite and the perplexity tasks)")
    parser.add_argument("--limit", type=float, default=20, help="documents per task, lm-eval's --limit (default 20)")
    parser.add_argument("--results", default="results/demo", help="where the runs land (default results/demo)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--train-steps", type=int, default=DemoSettings.train_steps, help="training steps per tiny model (default 150)")
    parser.add_argument("--max-gen-toks", type=int, default=DEMO_MAX_GEN_TOKS, help=f"cap on generated tokens per answer (default {DEMO_MAX_GEN_TOKS}; the tasks allow up to 512, which tiny models only fill with noise)")
    parser.add_argument("--use-cache", action="store_true", help="cache model answers so an interrupted demo resumes where it stopped")


def _selected(value: str) -> list[Candidate]:
    names = list(CANDIDATES) if value == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        from medmoe_lm_eval.config import ConfigError

        raise ConfigError("--candidates", "candidates", f"unknown candidate(s) {unknown}", f"choose from {', '.join(CANDIDATES)}")
    return [CANDIDATES[n] for n in names]


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def run(args: argparse.Namespace) -> int:
    from medmoe_lm_eval.evaluate import check_output_dir
    from medmoe_lm_eval.runs import evaluate_candidate

    console = cli_console()
    candidates = _selected(args.candidates)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = Path(args.results)
    check_output_dir(out)  # a read-only or full folder is reported before anything is built
    settings = DemoSettings(train_steps=args.train_steps)
    console.rule("medmoe demo")
    console.print(f"[yellow]{DISCLAIMER}[/]")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    started = time.perf_counter()
    with _progress(console) as progress:
        builder = DemoBuilder(settings, cache_dir(), progress)
        adapters = {c.name: _write_adapter(out / "adapters", builder.build(c)) for c in candidates}
    console.print(f"built {len(adapters)} candidates in {time.perf_counter() - started:.0f} s (cache: {builder.root})")
    limit = args.limit if args.limit != int(args.limit) else int(args.limit)
    runs: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for i, candidate in enumerate(candidates, start=1):
        console.rule(f"[{i}/{len(candidates)}] evaluating {candidate.name}")
        cache = str(out / ".cache" / candidate.name) if args.use_cache else None
        try:
            runs[candidate.name], _ = evaluate_candidate(adapters[candidate.name], tasks, out, candidate.name, limit=limit, device=args.device, use_cache=cache, gen_kwargs={"max_gen_toks": args.max_gen_toks})
        except BackendError as exc:  # one candidate failing must not cost the others' results
            failed[candidate.name] = str(exc)
            console.print(f"[red]{candidate.name} failed:[/] {exc}")
    console.rule("results")
    print_report(out, runs, console)
    for name, reason in failed.items():
        console.print(f"[red]not evaluated:[/] {name}: {reason}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; results in {out}/")
    console.print(f"open the leaderboard: [bold]medmoe leaderboard --results {out}[/]")
    return 1 if failed else 0


def _write_adapter(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Report


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
    quant = [ppl.get(f"generalist-gguf-{q}") for q in ("f16", "q8_0", "q4_0")]
    if all(quant):
        # mean log-perplexity (nats per word) over the domains; raw perplexities would let the
        # domain a model is worst at decide alone. Tiny models lose very little to quantization,
        # so the order is checked within QUANT_TOLERANCE (relative) of run-to-run rounding noise.
        mean = [sum(math.log(v) for v in q.values()) / len(q) for q in quant]
        ordered = all(a <= b * (1 + QUANT_TOLERANCE) for a, b in zip(mean, mean[1:]))
        checks.append((f"GGUF log-perplexity f16 <= q8_0 <= q4_0 within {QUANT_TOLERANCE:.1%} ({' <= '.join(f'{m:.4f}' for m in mean)})", ordered))
    else:
        checks.append(("GGUF perplexity f16 <= q8_0 <= q4_0", None))
    return checks


def print_report(out: Path, runs: dict[str, Path], console: Console) -> None:
    from medmoe_lm_eval.board import rank_tables

    for table in rank_tables(out):
        console.print(table)
    ppl = perplexities(runs)
    if ppl:
        table = Table(title="word perplexity on held-out domain text (lower is better)")
        table.add_column("candidate")
        for d in DOMAINS:
            table.add_column(d, justify="right")
        for name, row in ppl.items():
            best = {d: min(r.get(d, float("inf")) for r in ppl.values()) for d in DOMAINS}
            table.add_row(name, *[("[bold green]" if row.get(d) == best[d] else "") + (f"{row[d]:.1f}" if d in row else "-") for d in DOMAINS])
        console.print(table)
    for text, ok in expectations(ppl):
        mark = "[dim]-[/]" if ok is None else ("[green]✓[/]" if ok else "[red]✗[/]")
        console.print(f" {mark} {text}")
    console.print(f"[yellow]{DISCLAIMER}[/]")

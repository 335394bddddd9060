"""``medmoe quantize``: make a GPTQ, AWQ or GGUF candidate from a model, with its adapter YAML.

::

    medmoe quantize --model <hf dir> --method gptq|awq|gguf-f16|gguf-q8_0|gguf-q4_0|gguf-q4_k_m \
                    --calibration <file.jsonl | domain | task> --out <dir>
    medmoe quantize --model <file.gguf> --method dequantize --out <dir>   # the full-precision copy

then ``medmoe eval --model medmoe --model_args adapter=<dir>/adapter.yaml --tasks ...`` evaluates the copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medmoe_lm_eval import settings
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.quantization.make import METHODS, QuantizeJob, quantize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a local HF checkpoint folder (save_pretrained layout); a .gguf file for --method dequantize")
    parser.add_argument(
        "--method",
        required=True,
        choices=METHODS,
        help="4-bit GPTQ/AWQ through gptqmodel, a GGUF type for llama.cpp, or dequantize (GGUF -> float32 transformers folder)",
    )
    parser.add_argument(
        "--calibration", default=None, help="GPTQ/AWQ: a JSONL file with a 'text' field, a domain (biomedical, legal, code) or a bundled task name"
    )
    parser.add_argument("--out", required=True, help="output folder for the checkpoint and its adapter.yaml")
    parser.add_argument("--n-samples", type=int, default=128, help="calibration rows (default 128)")
    parser.add_argument("--calibration-length", type=int, default=512, help="tokens per calibration row; longer texts are truncated (default 512)")
    parser.add_argument("--domain", default="general", help="the expert's domain in the written adapter (default general)")
    parser.add_argument("--name", default=None, help="candidate name in the adapter (default <model>-<method>)")
    parser.add_argument(
        "--parent", default=None, help="the parent candidate's name, recorded for `medmoe fidelity` (default: the model folder's name; dequantize: the GGUF's)"
    )


def job_from_args(args: argparse.Namespace) -> QuantizeJob:
    return QuantizeJob(
        model=Path(args.model), method=args.method, out=Path(args.out), calibration=args.calibration,
        n_samples=args.n_samples, calibration_length=args.calibration_length, domain=args.domain, name=args.name, parent=args.parent,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success, 2 with one line on stderr for a user-fixable error."""
    from rich.progress import Progress

    from medmoe_lm_eval.console import cli_console
    from medmoe_lm_eval.quantization.gguf_convert import ConversionError

    console = cli_console(stderr=True, highlight=False)
    try:
        # a bar only on a terminal: in a log, rich's stopped bar would leave a blank line behind
        with Progress(transient=True, console=console, disable=not console.is_terminal) as bar:
            task = None

            def progress(stage: str, done: int, total: int) -> None:
                nonlocal task  # the bar appears with the first long step, not before
                if task is None:
                    task = bar.add_task(stage, total=total)
                bar.update(task, description=stage, completed=done, total=total)

            quantize(job_from_args(args), say=console.print, progress=progress)
    except (BackendError, ConversionError) as exc:
        print(f"medmoe quantize: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a library failing deep inside: still one line, with where to look
        if settings.DEBUG.value():
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"medmoe quantize: error: {args.method} failed: {type(exc).__name__}: {first} (set {settings.DEBUG.name}=1 for the traceback)", file=sys.stderr)
        return 1
    return 0

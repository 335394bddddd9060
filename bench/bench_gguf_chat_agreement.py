"""How often SmolLM2's Q4_1 GGUF and its float32 copy pick the same MedMCQA answer, and why not always.

The chat-template test (``tests/test_chat_template.py``) compares ``--model medmoe`` with one gguf
expert on ``SmolLM2-135M-Instruct.Q4_1.gguf`` against ``--model hf`` on the transformers-dequantized
float32 copy of the same file, on 30 items. This measures the same thing on more items, without
lm-eval's process overhead, and separates the causes:

* the requests are lm-eval's own (``build_all_requests`` with the chat options of the test, or
  none), cut into tokens by HFLM's rules with the HF tokenizer and with llama.cpp's; the token ids
  are compared first (they must be identical, so any difference below is numerical);
* ``hf``: the float32 copy in transformers, the reference;
* ``hf-q8`` (``--q8``): the same copy with every linear layer's input rounded to 8-bit blocks of
  32 values with a float16 scale, as llama.cpp rounds activations before a Q4_1 (q8_1) or Q8_0
  (q8_0) matrix product: how far the reference itself moves under that rounding alone;
* ``gguf f16-kv`` / ``gguf f32-kv``: the backend's batch scorer on the GGUF with llama.cpp's
  default float16 KV cache, and with a float32 one (``--kv f16,f32``).

Printed per variant: the share of items whose chosen answer equals ``hf``'s, the mean and largest
``|dLL|`` per continuation token (as the test prints it), and how many of ``hf``'s items are decided
by a margin (best minus second-best option) below 0.05 nats. Run::

    MEDMOE_DATA=bundled python bench/bench_gguf_chat_agreement.py --items 300 --q8
    MEDMOE_DATA=bundled python bench/bench_gguf_chat_agreement.py --items 100 --plain
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_gguf import gguf_file  # noqa: E402

TASK = "medmoe_medmcqa"
SYSTEM = "You are a careful medical expert."
#: llama.cpp's ggml_type numbers for the KV cache
KV_TYPES = {"f16": 1, "f32": 0}
NEAR_TIE = 0.05

Job = tuple[list[int], list[int]]


def lm_eval_requests(tokenizer: Any, items: int, chat: bool) -> list[list[tuple[str, str]]]:
    """Per item, its options' ``(context, continuation)``: lm-eval's requests with the test's options."""
    from lm_eval.tasks import TaskManager, get_task_dict

    task = get_task_dict([TASK], TaskManager(include_path=str(REPO / "tasks")))[TASK]
    task.set_fewshot_seed(seed=1234)  # simple_evaluate's default fewshot_random_seed
    options: dict[str, Any] = {}
    if chat:
        task.set_config(key="num_fewshot", value=1)

        def render(history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:  # HFLM.apply_chat_template
            return tokenizer.apply_chat_template(
                history, tokenize=False, add_generation_prompt=add_generation_prompt, continue_final_message=not add_generation_prompt
            )

        options = {"system_instruction": SYSTEM, "apply_chat_template": True, "fewshot_as_multiturn": True, "chat_template": render}
    task.build_all_requests(limit=items, rank=0, world_size=1, **options)
    by_doc: dict[int, list[tuple[str, str]]] = {}
    for instance in sorted(task.instances, key=lambda i: (i.doc_id, i.idx)):
        by_doc.setdefault(instance.doc_id, []).append(instance.args)
    return [by_doc[d] for d in sorted(by_doc)]


def jobs_for(items: list[list[tuple[str, str]]], encode: Callable[[str], list[int]]) -> list[list[Job]]:
    """HFLM's ``_encode_pair`` for every option: trailing context whitespace joins the continuation."""
    out = []
    for options in items:
        jobs = []
        for context, continuation in options:
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole, ctx = encode(context + continuation), encode(context)
            jobs.append((ctx, whole[len(ctx) :]))
        out.append(jobs)
    return out


def hf_scores(model: Any, items: list[list[Job]]) -> list[np.ndarray]:
    """Per item, each option's summed log-probability; one forward pass per distinct input."""
    import torch

    out = []
    for jobs in items:
        done: dict[tuple[int, ...], np.ndarray] = {}
        scores = []
        for ctx, cont in jobs:
            ids = tuple((ctx + cont)[:-1])
            if ids not in done:
                with torch.no_grad():
                    done[ids] = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1).numpy()
            rows = done[ids][len(ctx) - 1 :]
            scores.append(float(rows[np.arange(len(cont)), cont].sum()))
        out.append(np.array(scores))
    return out


def round_activations_q8(model: Any) -> list[Any]:
    """Hooks rounding every linear layer's input to blocks of 32 int8 values with a float16 scale."""
    import torch

    def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        blocks = x.reshape(*x.shape[:-1], x.shape[-1] // 32, 32)
        scale = blocks.abs().amax(-1, keepdim=True) / 127
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        return ((torch.round(blocks / safe) * scale.half().float()).reshape(x.shape),)

    return [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def gguf_scores(path: Path, kv: str, items: list[list[Job]], threads: int) -> list[np.ndarray]:
    """Per item, each option's log-probability from the backend's batch scorer, KV cache of type ``kv``."""
    import llama_cpp

    from medmoe_lm_eval.harness.backends.gguf_batch import BatchScorer, Scored, context_settings
    from medmoe_lm_eval.harness.backends.llama_compat import without_extra_buffers

    with without_extra_buffers(**context_settings(49152, 512)):
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
            type_k=KV_TYPES[kv], type_v=KV_TYPES[kv], verbose=False,
        )  # fmt: skip
    scorer = BatchScorer(llm, 512, "bench")
    try:
        out = []
        for jobs in items:
            scored = scorer.score([Scored(ctx + cont[:-1], cont) for ctx, cont in jobs])
            out.append(np.array([lp for lp, _ in scored]))
        return out
    finally:
        scorer.close()
        llm.close()


def compare(name: str, ref: list[np.ndarray], got: list[np.ndarray], lengths: list[list[int]], seconds: float) -> None:
    agree = np.mean([a.argmax() == b.argmax() for a, b in zip(ref, got)])
    per_token = np.concatenate([np.abs(a - b) / np.maximum(n, 1) for a, b, n in zip(ref, got, lengths)])
    print(f"{name:<12} same answer as hf {agree:6.1%}  |dLL| per token mean {per_token.mean():.4f} max {per_token.max():.4f}  ({seconds:.0f} s)")


def margins(scores: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([np.diff(np.sort(s)[-2:])[0] for s in scores])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="MedMCQA items (bundled sample: 300)")
    parser.add_argument("--plain", action="store_true", help="without the chat options (zero-shot, no template)")
    parser.add_argument("--q8", action="store_true", help="also score the float32 copy with 8-bit-rounded activations")
    parser.add_argument("--kv", default="f16,f32", help="comma-separated KV cache types for the gguf rows: f16, f32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("MEDMOE_DATA", "bundled")
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    from medmoe_lm_eval.quantization.real_copies import parent_adapter

    path = gguf_file("smollm2")
    copy = parent_adapter().parent  # the project's float32 copy of that file, dequantized once by transformers
    tokenizer = AutoTokenizer.from_pretrained(str(copy))
    items = lm_eval_requests(tokenizer, args.items, chat=not args.plain)

    def hf_encode(text: str) -> list[int]:  # HFLM.tok_encode: no second BOS on a string that starts with one
        return tokenizer.encode(text, add_special_tokens=not text.startswith(tokenizer.bos_token))

    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    jobs = jobs_for(items, hf_encode)
    same = jobs == jobs_for(items, lambda text: vocab.tokenize(text.encode(), add_bos=True, special=True))
    vocab.close()
    lengths = [[len(cont) for _, cont in item] for item in jobs]
    print(
        f"{len(items)} items, {'plain' if args.plain else 'chat'}; mean context {np.mean([len(j[0][0]) for j in jobs]):.0f} tokens; token ids HF == llama.cpp: {same}"
    )
    model = AutoModelForCausalLM.from_pretrained(str(copy), dtype=torch.float32).eval()
    start = time.perf_counter()
    ref = hf_scores(model, jobs)
    seconds = time.perf_counter() - start
    near = margins(ref) < NEAR_TIE
    print(f"{'hf':<12} reference ({seconds:.0f} s); items decided by < {NEAR_TIE} nats: {near.sum()} of {len(ref)}")
    if args.q8:
        hooks = round_activations_q8(model)
        start = time.perf_counter()
        compare("hf-q8", ref, hf_scores(model, jobs), lengths, time.perf_counter() - start)
        for hook in hooks:
            hook.remove()
    for kv in args.kv.split(","):
        start = time.perf_counter()
        got = gguf_scores(path, kv, jobs, args.threads)
        compare(f"gguf {kv}-kv", ref, got, lengths, time.perf_counter() - start)
        flips = [a.argmax() != b.argmax() for a, b in zip(ref, got)]
        print(f"{'':<12} of its disagreements, decided by < {NEAR_TIE} nats in hf: {sum(f and n for f, n in zip(flips, near))} of {sum(flips)}")


if __name__ == "__main__":
    main()

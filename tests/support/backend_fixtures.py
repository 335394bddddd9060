"""Helpers shared by the gguf, remote and quantize tests: a briefly trained tiny Llama and requests.

A random tiny model never prefers the real next token, so every ``is_greedy`` would be False and
its generations would be byte soup; 20 short training steps give real greedy flags and readable
generations, which is what the parity tests need to mean something.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lm_eval.api.instance import Instance

CONTEXTS = [
    ("The patient presented with", " fever and cough."),
    ("The patient presented with ", "fever"),
    ("Question: Which drug lowers blood pressure?\nAnswer:", " lisinopril"),
    ("The court held that", " the contract was void."),
    ("def add(a, b):", "\n    return a + b"),
    ("", "The patient presented with fever."),
]
ROLLING = ["The court held that the contract was void because the seller misrepresented the goods. " * 2]


def trained_copy(src: Path, dst: Path, texts: list[str], steps: int = 20) -> Path:
    """``src`` (a saved tiny Llama) trained ``steps`` small steps on ``texts`` into ``dst``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medmoe_lm_eval.testing.tiny import train_lm

    shutil.copytree(src, dst, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(dst))
    model = AutoModelForCausalLM.from_pretrained(str(dst))
    train_lm(model, tok, texts, steps=steps, batch_size=4, seq_len=64, lr=1e-2)
    model.save_pretrained(str(dst))
    return dst


def ll_requests(pairs: list[tuple[str, str]] = CONTEXTS) -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def rolling_requests(strings: list[str] = ROLLING) -> list[Instance]:
    return [Instance("loglikelihood_rolling", {}, (s,), i) for i, s in enumerate(strings)]


def gen_requests(prompts: list[str], until: list[str] | str, max_gen_toks: int) -> list[Instance]:
    kwargs = {"until": until, "max_gen_toks": max_gen_toks, "do_sample": False}
    return [Instance("generate_until", {}, (p, dict(kwargs)), i) for i, p in enumerate(prompts)]


def greedy_pairs(hflm, prompts: list[str], n_tokens: int = 4) -> list[tuple[str, str]]:
    """``(prompt, the model's own greedy continuation)``: requests whose ``is_greedy`` is True."""
    outs = hflm.generate_until(gen_requests(prompts, [], n_tokens))
    return [(p, o) for p, o in zip(prompts, outs) if o]

"""Tiny Llama models built locally: the offline stand-ins for real candidates.

The hub is out of reach in tests, CI and the offline demo, so the project builds its own
models: a byte-level BPE tokenizer trained with ``tokenizers`` on real texts, a few-layer
``LlamaForCausalLM`` (random, or briefly trained on a domain's texts), saved with
``save_pretrained`` so every backend loads them exactly as it would load a hub checkpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ("<s>", "</s>", "<unk>", "<pad>")


@dataclass(frozen=True)
class TinySpec:
    """Size of a tiny Llama. The defaults build and run in well under a second on one core."""

    vocab_size: int = 1024
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    seed: int = 0


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1024, model_max_length: int = 512):
    """Train a byte-level BPE tokenizer on ``texts`` and save it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=model_max_length,
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_model(tokenizer, spec: TinySpec = TinySpec()):
    """A randomly initialised ``LlamaForCausalLM`` sized by ``spec`` (deterministic per seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    return LlamaForCausalLM(config)


def train_lm(
    model,
    tokenizer,
    texts: Sequence[str],
    steps: int = 150,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Briefly train ``model`` on ``texts`` packed into ``seq_len`` blocks; returns the losses."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + [tokenizer.eos_token_id])
    n_blocks = max(1, len(ids) // seq_len)
    blocks = torch.tensor(ids[: n_blocks * seq_len] or ids, dtype=torch.long).view(n_blocks, -1)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses: list[float] = []
    for step in range(steps):
        batch = blocks[[rng.randrange(n_blocks) for _ in range(batch_size)]]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def build_tiny_model(
    out_dir: str | Path,
    texts: Sequence[str],
    spec: TinySpec = TinySpec(),
    tokenizer_dir: str | Path | None = None,
    train_steps: int = 0,
    **train_kwargs,
) -> Path:
    """Build (and optionally train) a tiny Llama with its tokenizer into ``out_dir``.

    ``tokenizer_dir`` reuses an existing tokenizer, so several experts can share one vocabulary
    (a mixture needs that to compare nothing; it only keeps the demo's models comparable).
    """
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        tokenizer = train_tokenizer(texts, out, vocab_size=spec.vocab_size, model_max_length=spec.max_position_embeddings)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.save_pretrained(str(out))
    model = build_model(tokenizer, spec)
    if train_steps:
        train_lm(model, tokenizer, texts, steps=train_steps, seed=spec.seed, **train_kwargs)
    model.save_pretrained(str(out))
    return out

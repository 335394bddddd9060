"""The batch size of the command line, as each backend understands a batch.

lm-eval passes ``--batch_size`` (a string: ``"16"``, ``"auto"``, ``"auto:4"``) and
``--max_batch_size`` to the model as keyword arguments. Without ``--batch_size`` its CLI passes
the integer ``1`` (its config default), while an explicit ``--batch_size 1`` arrives as the
string ``"1"``; so the integer 1 (or ``None`` from ``simple_evaluate``) means "not given" and
leaves each expert's adapter value, and anything else overrides it for every expert.

What a batch is differs per backend, and :func:`for_expert` says which one applies:

- ``hf``: sequences per forward pass, handed to lm-eval's ``HFLM`` (``auto`` included);
- ``remote``: requests in flight at once (the expert's ``concurrency``), since the server
  batches what arrives together;
- ``gguf``: requests per call (those sharing a context are decoded together); its
  ``n_batch`` (tokens per decode, an adapter field) is not a number of sequences and stays
  the adapter's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from medmoe_lm_eval.harness.config import ConfigError

#: ``HFLM``'s upper bound for ``auto`` when ``--max_batch_size`` is not given
HF_MAX_BATCH_SIZE = 64


@dataclass(frozen=True)
class BatchSetting:
    """A requested batch: a fixed ``size`` or ``"auto"`` (``schedule`` is the N of ``auto:N``)."""

    size: int | Literal["auto"]
    schedule: int = 1
    max_size: int | None = None
    source: Literal["cli", "adapter"] = "adapter"

    @property
    def is_auto(self) -> bool:
        return self.size == "auto"

    @property
    def lm_eval_value(self) -> int | str:
        """The value lm-eval's ``HFLM`` takes: ``16``, ``"auto"`` or ``"auto:4"``."""
        if not self.is_auto:
            return int(self.size)
        return "auto" if self.schedule == 1 else f"auto:{self.schedule}"

    def describe(self) -> str:
        return str(self.lm_eval_value)


def from_cli(batch_size: int | str | None, max_batch_size: int | str | None = None) -> BatchSetting | None:
    """The command line's batch, or ``None`` when it gave none (the adapter's value stays)."""
    cap = _positive(max_batch_size, "--max_batch_size") if max_batch_size not in (None, "") else None
    if batch_size is None or batch_size == "" or (isinstance(batch_size, int) and batch_size == 1):
        return None
    text = str(batch_size).strip()
    if text.startswith("auto"):
        _, _, every = text.partition(":")
        return BatchSetting("auto", _positive(every, "--batch_size") if every else 1, cap, "cli")
    return BatchSetting(_positive(text, "--batch_size"), 1, cap, "cli")


def _positive(value: Any, flag: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigError(flag, flag.lstrip("-"), f"'{value}' is not a positive integer", "pass an integer >= 1, 'auto' or 'auto:N'")
    return number


def for_expert(spec: Any, cli: BatchSetting | None) -> BatchSetting:
    """The expert's batch: the command line's when given, else its adapter fields.

    For a remote expert the adapter's batch is its ``concurrency``; a command-line ``auto``
    keeps that concurrency (capped by ``--max_batch_size``), since a server's capacity cannot be
    probed the way ``HFLM`` probes GPU memory.
    """
    if spec.backend == "remote":
        own = int(spec.concurrency)
        if cli is None:
            return BatchSetting(own)
        size = min(own, cli.max_size) if cli.is_auto and cli.max_size else own if cli.is_auto else cli.size
        return BatchSetting(size, 1, cli.max_size, "cli")
    if cli is not None:
        return cli
    return BatchSetting(spec.batch_size)

"""Calibration texts for GPTQ/AWQ: a JSONL file or the bundled texts of a domain or task.

Quantization calibration (the data a GPTQ/AWQ copy is fitted on), not confidence calibration
(``benchmarks.calibration``, ``analysis.calibration``), hence the module's name.

Texts longer than the calibration length are cut to it (counted and reported), never dropped;
only empty texts are skipped. Bundled names draw from the *train* side of the bundled data, so
a quantized candidate is never calibrated on the rows it is later scored on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmoe_lm_eval.harness.backends.base import BackendError


@dataclass
class Calibration:
    """Tokenized calibration rows plus what happened to the texts on the way."""

    rows: list[dict[str, list[int]]] = field(default_factory=list)
    source: str = ""
    texts: int = 0
    truncated: int = 0
    skipped_empty: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.rows)} calibration rows from {self.source} ({self.truncated} truncated to the calibration length, {self.skipped_empty} empty skipped)"
        )


def _jsonl_texts(path: Path) -> list[str]:
    texts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BackendError(f"{path}: row {n}: not valid JSON ({exc.msg}); fix: one JSON object per line") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise BackendError(f"{path}: row {n}: field 'text' is missing or not a string; fix: give every row a \"text\" string")
            texts.append(row["text"])
    return texts


def _bundled_texts(name: str) -> list[str]:
    from medmoe_lm_eval.benchmarks.domains import DOMAINS, task_domain
    from medmoe_lm_eval.benchmarks.splits import domain_texts

    domain = name if name in DOMAINS else task_domain(name)
    if domain not in DOMAINS:
        raise BackendError(
            f"--calibration: '{name}' is neither a JSONL file nor a bundled domain/task; fix: pass a .jsonl path with a 'text' field, or one of {list(DOMAINS)} or a task such as medmoe_medmcqa"
        )
    return domain_texts(domain, "train")


def load_texts(ref: str) -> tuple[list[str], str]:
    """Raw calibration texts and a description of where they came from."""
    path = Path(ref).expanduser()
    if path.is_file():
        return _jsonl_texts(path), str(path)
    if ref.endswith(".jsonl"):
        raise BackendError(f"--calibration: {path} does not exist; fix: pass an existing JSONL file")
    return _bundled_texts(ref), f"bundled '{ref}' (train split)"


def tokenize(texts: list[str], tokenizer: Any, n_samples: int, seq_len: int, source: str = "") -> Calibration:
    """Up to ``n_samples`` rows of at most ``seq_len`` tokens each."""
    cal = Calibration(source=source)
    for text in texts:
        if len(cal.rows) >= n_samples:
            break
        cal.texts += 1
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if not text.strip() or not ids:
            cal.skipped_empty += 1
            continue
        if len(ids) > seq_len:
            ids = ids[:seq_len]
            cal.truncated += 1
        cal.rows.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    if not cal.rows:
        raise BackendError(f"--calibration: {source} gave no usable text; fix: give rows with non-empty 'text'")
    return cal

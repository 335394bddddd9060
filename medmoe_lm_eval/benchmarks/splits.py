"""Train and held-out splits of the bundled rows, for the offline demo and for router training.

``train`` comes only from ``bundled/train/*`` files and a hash-chosen part of the LegalBench texts;
``heldout`` is the bundled evaluation rows, never trained on. Texts seen in ``train`` are dropped
from ``heldout``, so a router or an expert is never scored on what it learnt from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from medmoe_lm_eval.benchmarks.domains import DOMAINS
from medmoe_lm_eval.benchmarks.rows import DataError, read_jsonl, stable_hash
from medmoe_lm_eval.benchmarks.text import trim
from medmoe_lm_eval.paths import bundled_data_dir

if TYPE_CHECKING:
    import datasets


#: ``train`` may be learnt from; ``heldout`` is only ever evaluated on
Split = Literal["train", "heldout"]

#: share of the bundled LegalBench texts (by content hash) that is held out
LEGAL_HELDOUT_SHARE = 0.2


MIN_CHARS = 40


@lru_cache(maxsize=32)
def _bundled(relpath: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_jsonl(bundled_data_dir() / relpath))


def _legalbench_split(split: Split) -> list[dict[str, Any]]:
    def heldout(row: dict[str, Any]) -> bool:
        # salted: the bundle itself was chosen by the unsalted hash, which would bias the split
        return int(stable_hash("heldout\x00" + row["text"])[:8], 16) / 0xFFFFFFFF < LEGAL_HELDOUT_SHARE

    return [r for r in _bundled("legalbench_texts.jsonl") if heldout(r) == (split == "heldout")]


def _file(split: Split, name: str) -> str:
    return f"train/{name}.jsonl" if split == "train" else f"{name}.jsonl"


def _code_text(code: str) -> str:
    return code.replace("\r\n", "\n").replace("\r", "\n").strip()


def _abstract(row: dict[str, Any]) -> str:
    """A PubMedQA abstract: its sections, then its conclusion (``long_answer``)."""
    return " ".join(row["context"]["contexts"]) + " " + (row.get("long_answer") or "")


def _text_sources(domain: str, split: Split) -> list[list[tuple[str, str]]]:
    """Per source, ``(text, source)`` pairs in hash order."""
    if domain == "biomedical":
        pubmed = [(_abstract(r), "pubmedqa") for r in _bundled(_file(split, "pubmedqa"))]
        medquad = [(r["Answer"], "medquad") for r in _bundled(_file(split, "medquad"))]
        sources = [pubmed, medquad]
    elif domain == "legal":
        sources = [[(r["text"], "legalbench") for r in _legalbench_split(split)]]
        if split == "heldout":
            sources.append([(r["question"] + "\n" + r["answer"], "legal_ruleqa") for r in _bundled("legal_ruleqa.jsonl")])
    elif domain == "code":
        sources = [[(_code_text(r["code"]), "mbpp") for r in _bundled(_file(split, "mbpp"))]]
    else:
        raise DataError("domain_texts", None, "domain", f"unknown domain {domain!r}", f"use one of {list(DOMAINS)}")
    return [sorted(((t.strip(), s) for t, s in src if len(t.strip()) >= MIN_CHARS), key=lambda p: stable_hash(p[0])) for src in sources]


def _interleave(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Round-robin over groups so that any prefix mixes every source."""
    out: list[Any] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def _unseen(pairs: list[Any], split: Split, train_texts: Callable[[], set[str]]) -> list[Any]:
    """Drop duplicate texts; from ``heldout`` also every text that occurs in ``train``.

    Some sources repeat boilerplate verbatim across rows (MedQuAD's inheritance paragraphs), so
    a row-level split alone would let identical text into both sides.
    """
    seen = train_texts() if split == "heldout" else set()
    out = []
    for pair in pairs:
        if pair[0] not in seen:
            seen.add(pair[0])
            out.append(pair)
    return out


def _domain_pairs(domain: str, split: Split) -> list[tuple[str, str]]:
    pairs = _interleave(_text_sources(domain, split))
    return _unseen(pairs, split, lambda: {t for t, _ in _interleave(_text_sources(domain, "train"))})


def domain_texts(domain: str, split: Split) -> list[str]:
    """Real domain text from the bundled rows; ``train`` and ``heldout`` never share a text.

    biomedical: PubMedQA abstracts (+ conclusion) and MedQuAD answers; legal: LegalBench texts
    (held out by content hash) and, held out only, LegalBench rule_qa; code: MBPP solutions
    (train: MBPP's train split; held out: the bundled evaluation rows).
    """
    _check_split(split)
    return [t for t, _ in _domain_pairs(domain, split)]


def _router_sources(split: Split) -> dict[str, list[list[tuple[str, str]]]]:
    bio = [
        [(r["question"], "pubmedqa") for r in _bundled(_file(split, "pubmedqa"))],
        [(r["question"], "medmcqa") for r in _bundled(_file(split, "medmcqa"))],
        [(r["Question"], "medquad") for r in _bundled(_file(split, "medquad"))],
        # documents as well as questions: rolling log-likelihood routes whole abstracts and answers
        [(_abstract(r), "pubmedqa") for r in _bundled(_file(split, "pubmedqa"))],
        [(r["Answer"], "medquad") for r in _bundled(_file(split, "medquad"))],
    ]
    legal = [[(r["text"], "legalbench") for r in _legalbench_split(split)]]
    if split == "heldout":
        legal.append([(r["question"], "legal_ruleqa") for r in _bundled("legal_ruleqa.jsonl")])
    mbpp = _bundled(_file(split, "mbpp"))
    # a code request arrives as the problem alone, with its asserts, or as code
    code = [
        [(r["text"], "mbpp") for r in mbpp],
        [(r["text"] + "\n" + "\n".join(r["test_list"]), "mbpp") for r in mbpp],
        [(_code_text(r["code"]), "mbpp") for r in mbpp],
    ]
    return {"biomedical": bio, "legal": legal, "code": code}


def _router_pairs(split: Split) -> list[tuple[str, str, str]]:
    per_domain = []
    for domain, groups in _router_sources(split).items():
        ordered = [sorted(((t.strip(), s) for t, s in g if t.strip()), key=lambda p: stable_hash(p[0])) for g in groups]
        per_domain.append([(t, domain, s) for t, s in _interleave(ordered)])
    return _interleave(per_domain)


def router_examples(split: Split) -> list[dict[str, str]]:
    """``{"text", "domain", "source"}`` rows for training (``train``) or judging (``heldout``) a router.

    Built from the same split as ``domain_texts``: biomedical = PubMedQA, MedMCQA and MedQuAD
    questions; legal = LegalBench texts (+ rule_qa questions, held out only); code = MBPP
    problem statements alone and with their asserts, and MBPP solutions. Domains are interleaved; texts
    are unique, and no held-out text occurs in ``train``.
    """
    _check_split(split)
    rows = _unseen(_router_pairs(split), split, lambda: {t for t, _, _ in _router_pairs("train")})
    return [{"text": t, "domain": d, "source": s} for t, d, s in rows]


def ppl_docs(domain: str, n_docs: int = 40, max_chars: int = 1000) -> list[dict[str, str]]:
    """The perplexity task's documents: the first ``n_docs`` held-out texts, each trimmed."""
    pairs = _domain_pairs(domain, "heldout")[:n_docs]
    return [{"text": trim(t, max_chars), "source": s} for t, s in pairs]


def ppl_dataset(domain: str, **_metadata: Any) -> datasets.DatasetDict:
    """``custom_dataset`` of the ``medmoe_ppl_<domain>`` tasks (always the bundled held-out rows)."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(ppl_docs(domain))})


def mbpp_fewshot_docs(task_ids: Sequence[int] = (2, 3, 4)) -> list[dict[str, Any]]:
    """MBPP's own few-shot rows (task ids 2-4 of its ``prompt`` split, as in the MBPP paper)."""
    rows = {r["task_id"]: dict(r) for r in _bundled("mbpp_prompt.jsonl")}
    return [rows[i] for i in task_ids]


def _check_split(split: str) -> None:
    if split not in ("train", "heldout"):
        raise DataError("medmoe_lm_eval.benchmarks.sources", None, "split", f"unknown split {split!r}", "use 'train' or 'heldout'")

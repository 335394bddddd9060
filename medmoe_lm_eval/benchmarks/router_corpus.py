"""The shipped router's corpus, read from a folder laid out as the project's data release.

A router may learn only from rows that no shipped task evaluates, in any data mode. So from a
release folder (``medqa/dev.jsonl``, ``mmlu_medical/dev.jsonl``, ... see its README) ``train`` takes
every non-evaluation split and leaves out:

* MedMCQA entirely (``validation`` is the split ``medmoe_medmcqa`` scores on the hub);
* the bundled evaluation rows (``bundled/<benchmark>.jsonl``): the MedQA dev rows, MMLU ``val``,
  PubMedQA, MedQuAD, MBPP validation and LegalBench rule_qa rows the tasks score offline;
* MedQuAD rows the hub task could select (its 1,000 lowest content hashes of about 16,400 rows,
  i.e. hash fractions under 0.061; every row under ``MEDQUAD_HUB_MARGIN`` is left out);
* LegalBench rule_qa texts and the bundled LegalBench held-out texts (the ``medmoe_ppl_legal`` documents).

``unseen`` is what the router is judged on: evaluation rows of all three domains it never saw
(MedMCQA, MedQA, MMLU val, PubMedQA and MedQuAD questions, LegalBench rule_qa and held-out
texts, MBPP validation problems and solutions).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from medmoe_lm_eval.benchmarks.rows import DataError, read_jsonl, stable_hash
from medmoe_lm_eval.benchmarks.splits import router_examples
from medmoe_lm_eval.paths import bundled_data_dir

Part = Literal["train", "unseen"]

#: MedQuAD rows with a content-hash fraction under this could be in the hub task's subset
MEDQUAD_HUB_MARGIN = 0.08

#: files a release folder must hold (relative paths)
RELEASE_FILES = (
    "medqa/dev.jsonl",
    "mmlu_medical/dev.jsonl",
    "mmlu_medical/val.jsonl",
    "pubmedqa/pqa_labeled_nontest.jsonl",
    "medquad/medquad_sample.jsonl",
    "medmcqa/validation_part1.jsonl",
    "legalbench_texts/texts_part1.jsonl",
    "legalbench_rule_qa/rule_qa_part1.jsonl",
    "mbpp/train.jsonl",
    "mbpp/prompt.jsonl",
    "mbpp/validation.jsonl",
)


def is_release_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / "medqa").is_dir() and (folder / "legalbench_texts").is_dir()


def _read(folder: Path, relpath: str) -> list[dict[str, Any]]:
    return read_jsonl(folder / relpath, f"the data release has {relpath}; point --data at the release folder")


def _bundled_keys(name: str, key: str) -> set[str]:
    return {str(r[key]) for r in read_jsonl(bundled_data_dir() / f"{name}.jsonl")}


def medqa_text(row: dict[str, Any]) -> str:
    return row["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in sorted(row["options"].items()))


def mmlu_text(row: dict[str, Any]) -> str:
    return row["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in zip("ABCD", row["choices"]))


def medmcqa_text(row: dict[str, Any]) -> str:
    return row["question"] + "\n" + "\n".join(f"{k}. {row['op' + k.lower()]}" for k in "ABCD")


def _abstract(row: dict[str, Any]) -> str:
    return " ".join(row["context"]["contexts"]) + " " + (row.get("long_answer") or "")


def _hub_candidate(row: dict[str, Any]) -> bool:
    return int(stable_hash(row["Question"] + "\x00" + row["Answer"])[:8], 16) / 0xFFFFFFFF < MEDQUAD_HUB_MARGIN


def _biomedical(folder: Path, part: Part) -> Iterable[tuple[str, str]]:
    unseen = part == "unseen"
    medqa_eval = _bundled_keys("medqa", "question")
    yield from ((medqa_text(r), "medqa") for r in _read(folder, "medqa/dev.jsonl") if (r["question"] in medqa_eval) == unseen)
    yield from ((mmlu_text(r), "mmlu") for r in _read(folder, "mmlu_medical/val.jsonl" if unseen else "mmlu_medical/dev.jsonl"))
    pubmed_eval = _bundled_keys("pubmedqa", "pubid")
    for row in _read(folder, "pubmedqa/pqa_labeled_nontest.jsonl"):
        if (str(row["pubid"]) in pubmed_eval) == unseen:
            yield row["question"], "pubmedqa"
            if not unseen:
                yield _abstract(row), "pubmedqa"
    medquad_eval = _bundled_keys("medquad", "qid")
    for row in _read(folder, "medquad/medquad_sample.jsonl"):
        if unseen and row["qid"] in medquad_eval:
            yield row["Question"], "medquad"
        elif not unseen and row["qid"] not in medquad_eval and not _hub_candidate(row):
            yield row["Question"], "medquad"
            yield row["Answer"], "medquad"
    if unseen:
        yield from ((medmcqa_text(r), "medmcqa") for r in _read(folder, "medmcqa/validation_part1.jsonl"))


def _legal(folder: Path, part: Part) -> Iterable[tuple[str, str]]:
    heldout = {r["text"].strip() for r in router_examples("heldout") if r["source"] == "legalbench"}
    if part == "unseen":
        yield from ((t, "legalbench") for t in sorted(heldout))
        yield from ((r["question"], "legal_ruleqa") for r in _read(folder, "legalbench_rule_qa/rule_qa_part1.jsonl"))
        return
    for row in _read(folder, "legalbench_texts/texts_part1.jsonl"):
        if row["task"] != "rule_qa" and row["text"].strip() not in heldout:
            yield row["text"], f"legalbench/{row['task']}"


def _code(folder: Path, part: Part) -> Iterable[tuple[str, str]]:
    files = ("mbpp/validation.jsonl",) if part == "unseen" else ("mbpp/train.jsonl", "mbpp/prompt.jsonl")
    for relpath in files:
        for row in _read(folder, relpath):
            yield row["text"] + "\n" + "\n".join(row["test_list"]), "mbpp"
            yield row["code"].replace("\r\n", "\n").strip(), "mbpp"


def corpus(folder: str | Path, part: Part) -> list[dict[str, str]]:
    """``{"text", "domain", "source"}`` rows of a release folder: ``train`` or ``unseen`` (see above).

    Texts are stripped and unique; no ``unseen`` text occurs in ``train``.
    """
    folder = Path(folder)
    missing = [p for p in RELEASE_FILES if not (folder / p).is_file()]
    if missing:
        raise DataError(
            folder,
            None,
            None,
            f"not a data release folder (missing {missing[0]})",
            "pass the folder whose README lists medqa/, mmlu_medical/, legalbench_texts/ ...",
        )
    seen = {r["text"] for r in corpus(folder, "train")} if part == "unseen" else set()
    rows: list[dict[str, str]] = []
    for domain, make in (("biomedical", _biomedical), ("legal", _legal), ("code", _code)):
        for text, source in make(folder, part):
            text = text.strip()
            if text and text not in seen:
                seen.add(text)
                rows.append({"text": text, "domain": domain, "source": source})
    return rows

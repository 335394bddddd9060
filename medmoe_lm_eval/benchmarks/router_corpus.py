"""The shipped router's corpus and its unseen queries, read from a folder laid out as the project's data release.

Three kinds of release rows (see the release README for the files):

* **bundled**: rows the package ships (``benchmarks/bundled``). Their router split
  (``splits.router_examples("train")``) is what ``medmoe train-router --data bundled`` learns; the
  shipped router learns it too (less MedMCQA, see below). Bundled evaluation rows are learnt by
  neither.
* **never learnt**: MedMCQA (its ``validation`` split is what ``medmoe_medmcqa`` scores on the
  hub), MedQuAD rows the hub task could select (hash fractions under ``MEDQUAD_HUB_MARGIN``),
  LegalBench rule_qa, and the templated LegalBench tasks (``TEMPLATED_LEGAL``: texts that differ
  only in names and amounts), which are held out whole so that no template is learnt from more
  than the bundle's few samples of it.
* **free**: every other release row. Each belongs to a *group* (a MedQA question, a PubMedQA or
  MedQuAD record with its question and its document, a LegalBench text up to case, digits and
  punctuation); a group is unseen when the hash of its name falls under ``UNSEEN_SHARE``, else
  the shipped router learns it. Near-copies therefore land on one side only.

``train`` (the shipped router's rows) = the bundled router split (no MedMCQA) + MMLU's few-shot
rows + the free rows of learnt groups. ``unseen`` (what every router is judged on) = the free rows of
unseen groups + the never-learnt rows that are not bundled + the code queries: MBPP is bundled in
full, so its evaluation rows (``validation`` and ``prompt``, never learnt by either router) are
the code queries, each as its problem statement alone, with its asserts, and its solution. No
``unseen`` text occurs in ``train``, in the bundled router split, or (code apart) in the bundle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from medmoe_lm_eval.benchmarks.rows import DataError, read_jsonl, stable_hash
from medmoe_lm_eval.benchmarks.splits import router_examples
from medmoe_lm_eval.paths import bundled_data_dir

Part = Literal["train", "unseen"]

#: MedQuAD rows with a content-hash fraction under this could be in the hub task's subset
MEDQUAD_HUB_MARGIN = 0.08
#: free groups with a hash fraction under this are unseen (the rest are learnt by the shipped router)
UNSEEN_SHARE = 0.8
#: LegalBench tasks whose texts are filled-in templates, held out whole (task prefix -> family)
TEMPLATED_LEGAL = ("diversity_", "abercrombie", "hearsay", "proa", "personal_jurisdiction", "intra_rule_distinguishing", "statutory_reasoning_assessment")

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


class Item(NamedTuple):
    """One release text: ``kind`` is ``bundled``, ``never`` (never learnt) or ``free``."""

    text: str
    domain: str
    source: str
    group: str
    kind: str


def is_release_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / "medqa").is_dir() and (folder / "legalbench_texts").is_dir()


def _read(folder: Path, relpath: str) -> list[dict[str, Any]]:
    return read_jsonl(folder / relpath, f"the data release has {relpath}; point --data at the release folder")


def _bundled_keys(key: str, *names: str) -> set[str]:
    return {str(r[key]) for name in names for r in read_jsonl(bundled_data_dir() / f"{name}.jsonl")}


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


def near_copy_key(text: str) -> str:
    """A text up to case, digits and punctuation: texts that differ only there are one group."""
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def _kind(bundled: bool, never: bool = False) -> str:
    return "bundled" if bundled else "never" if never else "free"


def _biomedical(folder: Path) -> Iterable[Item]:
    medqa = _bundled_keys("question", "medqa")
    for r in _read(folder, "medqa/dev.jsonl"):
        yield Item(medqa_text(r), "biomedical", "medqa", "medqa/" + r["question"], _kind(r["question"] in medqa))
    yield from (Item(mmlu_text(r), "biomedical", "mmlu", "mmlu", "bundled") for r in _read(folder, "mmlu_medical/dev.jsonl"))
    pubmed = _bundled_keys("pubid", "pubmedqa", "train/pubmedqa")
    for r in _read(folder, "pubmedqa/pqa_labeled_nontest.jsonl"):
        kind = _kind(str(r["pubid"]) in pubmed)
        yield Item(r["question"], "biomedical", "pubmedqa", f"pubmedqa/{r['pubid']}", kind)
        yield Item(_abstract(r), "biomedical", "pubmedqa", f"pubmedqa/{r['pubid']}", kind)
    medquad = _bundled_keys("qid", "medquad", "train/medquad")
    for r in _read(folder, "medquad/medquad_sample.jsonl"):
        kind = _kind(r["qid"] in medquad, _hub_candidate(r))
        yield Item(r["Question"], "biomedical", "medquad", f"medquad/{r['qid']}", kind)
        yield Item(r["Answer"], "biomedical", "medquad", f"medquad/{r['qid']}", kind)
    medmcqa = _bundled_keys("id", "medmcqa", "train/medmcqa")
    for r in _read(folder, "medmcqa/validation_part1.jsonl"):
        yield Item(medmcqa_text(r), "biomedical", "medmcqa", "medmcqa/" + r["id"], _kind(r["id"] in medmcqa, never=True))


def _legal(folder: Path) -> Iterable[Item]:
    bundled = {r["text"].strip() for r in read_jsonl(bundled_data_dir() / "legalbench_texts.jsonl")}
    for r in _read(folder, "legalbench_texts/texts_part1.jsonl"):
        if r["task"] == "rule_qa":  # the rule_qa questions are evaluation rows (below)
            continue
        family = next((t.rstrip("_") for t in TEMPLATED_LEGAL if r["task"].startswith(t)), None)
        group = f"legalbench/{family}" if family else "legal/" + near_copy_key(r["text"])
        yield Item(r["text"], "legal", "legalbench/" + (family or r["task"]), group, _kind(r["text"].strip() in bundled, family is not None))
    ruleqa = _bundled_keys("question", "legal_ruleqa")
    for r in _read(folder, "legalbench_rule_qa/rule_qa_part1.jsonl"):
        yield Item(r["question"], "legal", "legal_ruleqa", "legal_ruleqa", _kind(r["question"] in ruleqa, never=True))


def mbpp_queries(row: dict[str, Any]) -> list[str]:
    """How a code request reaches a router: the problem alone, with its asserts, and a solution."""
    return [row["text"], row["text"] + "\n" + "\n".join(row["test_list"]), row["code"].replace("\r\n", "\n").strip()]


def _code(folder: Path) -> Iterable[Item]:
    for relpath in ("mbpp/validation.jsonl", "mbpp/prompt.jsonl"):
        for row in _read(folder, relpath):
            yield from (Item(t, "code", "mbpp", f"mbpp/{row['task_id']}", "never") for t in mbpp_queries(row))


def release_items(folder: str | Path) -> list[Item]:
    """Every release text the router corpus draws on, stripped, with its kind and group."""
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
    items = [*_biomedical(folder), *_legal(folder), *_code(folder)]
    return [it._replace(text=it.text.strip()) for it in items if it.text.strip()]


def unseen_group(group: str) -> bool:
    return int(stable_hash("unseen\x00" + group)[:8], 16) / 0xFFFFFFFF < UNSEEN_SHARE


def _bundled_router_rows() -> list[dict[str, str]]:
    return [r for r in router_examples("train") if r["source"] != "medmcqa"]


def corpus(folder: str | Path, part: Part) -> list[dict[str, str]]:
    """``{"text", "domain", "source"}`` rows of a release folder: ``train`` or ``unseen`` (see above).

    Texts are stripped and unique; no ``unseen`` text occurs in ``train`` or in the bundled router split.
    """
    items = release_items(folder)
    if part == "train":
        picked = [(r["text"].strip(), r["domain"], r["source"]) for r in _bundled_router_rows()]
        picked += [(it.text, it.domain, it.source) for it in items if it.source == "mmlu" or (it.kind == "free" and not unseen_group(it.group))]
        return _unique(picked, set())
    learnt = {t for t, *_ in _unique([(r["text"].strip(), "", "") for r in router_examples("train")], set())}
    learnt |= {r["text"] for r in corpus(folder, "train")}
    bundled = {it.text for it in items if it.kind == "bundled"}
    picked = [(it.text, it.domain, it.source) for it in items if (it.kind == "never" or (it.kind == "free" and unseen_group(it.group)))]
    return _unique([p for p in picked if p[1] == "code" or p[0] not in bundled], learnt)


def _unique(picked: list[tuple[str, str, str]], seen: set[str]) -> list[dict[str, str]]:
    rows = []
    for text, domain, source in picked:
        if text and text not in seen:
            seen.add(text)
            rows.append({"text": text, "domain": domain, "source": source})
    return rows

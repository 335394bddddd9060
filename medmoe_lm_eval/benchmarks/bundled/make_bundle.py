"""Rebuild the bundled samples from the benchmarks' public releases (already in hub schema).

Kept as the record of how every bundled row was chosen; the package never imports it. Rows are
copied unchanged; only which rows is decided here, by content hash so that the choice does not
depend on file order. ``lawse.jsonl`` is not built here: it holds hand-written synthetic records.

    python -m medmoe_lm_eval.benchmarks.bundled.make_bundle /path/to/shared/data
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from medmoe_lm_eval.benchmarks.sandbox import Limits, run_programs
from medmoe_lm_eval.benchmarks.rows import hash_order, read_jsonl

OUT = Path(__file__).resolve().parent
#: (eval rows, train-only rows) per benchmark
SIZES = {"pubmedqa": (200, 200), "medmcqa": (300, 300), "medquad": (300, 400)}
LEGALBENCH_PER_TASK = 30
#: MedQA dev rows shipped as the bundled evaluation rows of ``medmoe_medqa``
MEDQA_EVAL_ROWS = 300
LICENSES = ("pubmedqa-MIT.txt", "medmcqa-MIT.txt", "medquad-CC-BY-4.0.txt", "legalbench-sara-MIT.txt", "medqa-MIT.txt", "mmlu-MIT.txt")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(OUT)}: {len(rows)} rows, {path.stat().st_size / 1024:.0f} KiB")


def _split(name: str, rows: list[dict], key) -> None:
    n_eval, n_train = SIZES[name]
    ordered = hash_order(rows, key)
    _write(OUT / f"{name}.jsonl", ordered[:n_eval])
    _write(OUT / "train" / f"{name}.jsonl", ordered[n_eval : n_eval + n_train])


def _mbpp_program(row: dict) -> str:
    return "\n".join([row.get("test_setup_code") or "", row["code"], *row["test_list"]])


def _passing(rows: list[dict]) -> list[dict]:
    """Only rows whose reference solution passes its own asserts (a known-answer task needs that)."""
    results = run_programs([_mbpp_program(r) for r in rows], Limits(wall_s=20, cpu_s=10))
    bad = [r["task_id"] for r, res in zip(rows, results, strict=True) if not res.passed]
    if bad:
        print(f"mbpp: reference fails its tests for task ids {bad}; left out")
    return [r for r, res in zip(rows, results, strict=True) if res.passed]


def build_medical_mc(shared: Path) -> None:
    """MedQA (dev split, 300 rows by question hash) and the MMLU medical subjects (val to score, dev for few-shot)."""
    medqa = hash_order(read_jsonl(shared / "medqa/dev.jsonl"), lambda r: r["question"])
    _write(OUT / "medqa.jsonl", medqa[:MEDQA_EVAL_ROWS])
    _write(OUT / "mmlu_medical.jsonl", read_jsonl(shared / "mmlu_medical/val.jsonl"))
    _write(OUT / "mmlu_medical_dev.jsonl", read_jsonl(shared / "mmlu_medical/dev.jsonl"))


def build(shared: Path) -> None:
    _split("pubmedqa", read_jsonl(shared / "pubmedqa/pqa_labeled_nontest.jsonl"), lambda r: str(r["pubid"]))
    _split("medmcqa", read_jsonl(shared / "medmcqa/validation_part1.jsonl"), lambda r: r["id"])
    _split("medquad", read_jsonl(shared / "medquad/medquad_sample.jsonl"), lambda r: r["qid"])
    _write(OUT / "legal_ruleqa.jsonl", read_jsonl(shared / "legalbench_rule_qa/rule_qa_part1.jsonl"))
    build_medical_mc(shared)

    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in read_jsonl(shared / "legalbench_texts/texts_part1.jsonl"):
        if row["task"] != "rule_qa":  # rule_qa questions are evaluation rows: never train on them
            by_task[row["task"]].append(row)
    texts = [r for task in sorted(by_task) for r in hash_order(by_task[task], lambda r: r["text"])[:LEGALBENCH_PER_TASK]]
    _write(OUT / "legalbench_texts.jsonl", texts)

    _write(OUT / "mbpp.jsonl", _passing(read_jsonl(shared / "mbpp/validation.jsonl")))
    _write(OUT / "mbpp_prompt.jsonl", read_jsonl(shared / "mbpp/prompt.jsonl"))
    _write(OUT / "train" / "mbpp.jsonl", read_jsonl(shared / "mbpp/train.jsonl"))

    shutil.copyfile(shared / "pubmedqa/test_pubids.json", OUT / "pubmedqa_test_pubids.json")
    (OUT / "licenses").mkdir(exist_ok=True)
    for name in LICENSES:
        shutil.copyfile(shared / "licenses" / name, OUT / "licenses" / name)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data").resolve())

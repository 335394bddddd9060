"""Where every benchmark's rows come from, and the project's fixed evaluation selections.

One switch for all tasks. ``--metadata '{"medmoe_data": ...}'`` (per run) or the ``MEDMOE_DATA``
environment variable chooses:

* unset or ``hub``: the Hugging Face hub dataset (the default for users);
* ``bundled``: the small real samples shipped in ``medmoe_lm_eval/bundled`` (offline, tests, demo);
* a folder: ``<folder>/<benchmark>.jsonl`` for benchmark in ``BENCHMARKS``, each row in the hub
  dataset's column schema and the file holding the evaluation split.

Every source goes through the same row checks and the same selection (``Benchmark.select``), so a
task scores the same rows whichever way they arrived. Bad files fail with one line naming the
file, row and field (``DataError``).

The second half serves the offline demo: ``domain_texts`` and ``router_examples`` split the
bundled rows into ``train`` (only ``bundled/train/*`` files and a hash-chosen part of the LegalBench
texts) and ``heldout`` (the bundled evaluation rows, never trained on), and ``ppl_docs`` draws the
perplexity tasks' documents from the held-out part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medmoe_lm_eval.paths import bundled_data_dir

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

DATA_ENV = "MEDMOE_DATA"
METADATA_KEY = "medmoe_data"
Domain = Literal["biomedical", "legal", "code"]
Split = Literal["train", "heldout"]
DOMAINS: tuple[str, ...] = ("biomedical", "legal", "code")

#: Generation-scored benchmarks with thousands of rows are cut to this many, chosen by a content
#: hash (independent of row order and library versions). At 1,000 rows the standard error of a
#: mean ROUGE-L F1 (per-row spread about 0.1-0.15) is about 0.004, finer than the gaps between
#: candidates we rank, while generating up to 512 tokens for all 16k MedQuAD or 24k
#: Law-StackExchange rows would cost every candidate 16-24x more time and energy for no change in
#: the ranking. The order is the hash order too, so ``--limit n`` takes a fixed pseudo-random n.
EVAL_SUBSET = 1000


class DataError(ValueError):
    """A data file or row that cannot be used: ``<file>: row <n>: field '<f>': <problem>; fix: <fix>``."""

    def __init__(self, file: str | Path, row: int | None, field_name: str | None, problem: str, fix: str) -> None:
        self.file, self.row, self.field, self.problem, self.fix = str(file), row, field_name, problem, fix
        where = str(file) + (f": row {row}" if row is not None else "") + (f": field '{field_name}'" if field_name else "")
        super().__init__(f"{where}: {problem}; fix: {fix}")


# -- benchmarks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubDataset:
    """Where a benchmark lives on the hub: dataset id, config, split."""

    path: str
    name: str | None
    split: str

    def label(self) -> str:
        return f"hub:{self.path}" + (f"[{self.name}]" if self.name else "") + f"/{self.split}"


Check = Callable[[dict[str, Any]], "tuple[str, str] | None"]
Select = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its hub home, the fields its task reads, checks and evaluation selection."""

    name: str
    domain: str
    hub: HubDataset
    required: tuple[str, ...]
    check: Check | None = None
    select: Select | None = None
    notes: str = ""


def stable_hash(text: str) -> str:
    """A content hash that orders rows the same way on every machine and library version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_order(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: stable_hash(key(r)))


def _pubmedqa_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if row["final_decision"] not in PUBMEDQA_CHOICES:
        return "final_decision", f"is {row['final_decision']!r}, expected one of {list(PUBMEDQA_CHOICES)}"
    if not isinstance(row["context"].get("contexts"), list):
        return "context.contexts", "is not a list of abstract sections"
    return None


def _pubmedqa_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The official PQA-L test split is the 500 ids in ``test_pubids.json``.

    The hub copy keeps all 1,000 labelled questions in one ``train`` split, so they are filtered
    here. A file that holds none of those ids (the bundled sample is drawn from the other 500,
    since the test records are not redistributed here) is used whole, with a warning.
    """
    test_ids = pubmedqa_test_ids()
    kept = [r for r in rows if int(r["pubid"]) in test_ids]
    if kept:
        return kept
    log.warning("PubMedQA rows contain none of the %d official test ids; evaluating all %d rows as given", len(test_ids), len(rows))
    return rows


def _medmcqa_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(row["cop"], int) or not 0 <= row["cop"] <= 3:
        return "cop", f"is {row['cop']!r}, expected the correct option's index 0-3"
    return None


def _medquad_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answered = [r for r in rows if str(r["Answer"]).strip() and str(r["Question"]).strip()]
    return hash_order(answered, lambda r: r["Question"] + "\x00" + r["Answer"])[:EVAL_SUBSET]


def _lawse_check(row: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(row["answers"], list):
        return "answers", "is not a list of {body, score} answers"
    for i, ans in enumerate(row["answers"]):
        if not isinstance(ans, dict) or "body" not in ans or "score" not in ans:
            return f"answers[{i}]", "needs 'body' and 'score'"
    return None


def _lawse_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Questions with at least one answer; the reference is the highest-scored answer, as text."""
    docs = []
    for row in rows:
        best = best_answer(row["answers"])
        if best is None:
            continue
        answer = html_to_text(best["body"])
        if not answer:
            continue
        docs.append({**row, "question_text": html_to_text(row["question_body"]), "best_answer": answer})
    if any(r.get("synthetic") for r in docs):
        log.warning("Law-StackExchange rows marked synthetic: fine for testing the pipeline, meaningless as a score")
    return hash_order(docs, lambda r: str(r["question_id"]))[:EVAL_SUBSET]


def _mbpp_check(row: dict[str, Any]) -> tuple[str, str] | None:
    tests = row["test_list"]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        return "test_list", "must be a non-empty list of assert statements"
    return None


def _mbpp_select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "test_setup_code": r.get("test_setup_code") or ""} for r in rows]


PUBMEDQA_CHOICES = ("yes", "no", "maybe")

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "pubmedqa", "biomedical", HubDataset("qiaojin/PubMedQA", "pqa_labeled", "train"),
            ("pubid", "question", "context", "final_decision"), _pubmedqa_check, _pubmedqa_select,
            "filtered to the 500 official PQA-L test ids",
        ),
        Benchmark(
            "medmcqa", "biomedical", HubDataset("openlifescienceai/medmcqa", None, "validation"),
            ("question", "opa", "opb", "opc", "opd", "cop"), _medmcqa_check,
        ),
        Benchmark(
            "medquad", "biomedical", HubDataset("keivalya/MedQuad-MedicalQnADataset", None, "train"),
            ("Question", "Answer"), None, _medquad_select, f"{EVAL_SUBSET} answered rows by content hash",
        ),
        Benchmark(
            "lawse", "legal", HubDataset("ymoslem/Law-StackExchange", None, "train"),
            ("question_id", "question_title", "question_body", "answers"), _lawse_check, _lawse_select,
            f"answered questions, best answer by score, HTML stripped, {EVAL_SUBSET} by id hash",
        ),
        Benchmark(
            "legal_ruleqa", "legal", HubDataset("nguha/legalbench", "rule_qa", "test"), ("question", "answer"),
        ),
        Benchmark(
            "mbpp", "code", HubDataset("google-research-datasets/mbpp", "full", "test"),
            ("task_id", "text", "code", "test_list"), _mbpp_check, _mbpp_select,
        ),
    )
}


def benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        problem = f"unknown benchmark {name!r}"
        raise DataError("medmoe_lm_eval.sources", None, "benchmark", problem, f"use one of {sorted(BENCHMARKS)}") from None


# -- choosing the source ---------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """``hub``, or a folder of ``<benchmark>.jsonl`` files (``bundled`` is one such folder)."""

    kind: Literal["hub", "bundled", "dir"]
    directory: Path | None = None

    def file_for(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{name}.jsonl"


def resolve_source(setting: str | None = None) -> DataSource:
    """The source named by ``setting`` (from ``--metadata``), else by ``MEDMOE_DATA``, else the hub."""
    origin = f"--metadata {METADATA_KEY}" if setting not in (None, "") else DATA_ENV
    value = str(setting if setting not in (None, "") else os.environ.get(DATA_ENV, "")).strip()
    if value in ("", "hub"):
        return DataSource("hub")
    if value == "bundled":
        return DataSource("bundled", bundled_data_dir())
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise DataError(
            origin, None, None, f"{value!r} is not 'hub', 'bundled' or an existing folder",
            f"set {origin} to 'hub', 'bundled' or a folder holding <benchmark>.jsonl files ({', '.join(BENCHMARKS)})",
        )
    return DataSource("dir", folder.resolve())


# -- reading and checking rows ---------------------------------------------------------------


def _get(row: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def check_rows(rows: Sequence[dict[str, Any]], bench: Benchmark, origin: str, first_row: int = 1) -> None:
    """Every row has the fields the task reads, with usable values; else a one-line ``DataError``."""
    fix = f"each row needs {', '.join(bench.required)} as in the hub dataset {bench.hub.path}"
    for i, row in enumerate(rows, start=first_row):
        if not isinstance(row, dict):
            raise DataError(origin, i, None, "is not a JSON object", "write one JSON object per line")
        for name in bench.required:
            present, value = _get(row, name)
            if not present or value is None:
                raise DataError(origin, i, name, "is missing", fix)
        problem = bench.check(row) if bench.check else None
        if problem:
            raise DataError(origin, i, problem[0], problem[1], fix)


def read_numbered_jsonl(path: Path, hint: str = "") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of a JSON-lines file (blank lines skipped); bad files fail clearly."""
    if not path.is_file():
        raise DataError(path, None, None, "file not found", hint or "create it, one JSON object per line")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(path, lineno, None, f"is not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})", "re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, None, f"is not valid JSON ({exc.msg})", "write one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(path, lineno, None, "is not a JSON object", "write one JSON object per line")
            rows.append((lineno, row))
    if not rows:
        raise DataError(path, None, None, "file is empty (no rows)", hint or "add rows, one JSON object per line")
    return rows


def read_jsonl(path: Path, hint: str = "") -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; missing, empty or broken files fail with one line."""
    return [row for _, row in read_numbered_jsonl(path, hint)]


def _checked_file_rows(path: Path, bench: Benchmark) -> list[dict[str, Any]]:
    hint = f"put the {bench.name} evaluation rows there in the column schema of {bench.hub.label()}, or unset {DATA_ENV} to use the hub"
    numbered = read_numbered_jsonl(path, hint)
    for lineno, row in numbered:  # row numbers in errors are the file's line numbers
        check_rows([row], bench, str(path), first_row=lineno)
    return [row for _, row in numbered]


def _hub_rows(bench: Benchmark) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(bench.hub.path, bench.hub.name, split=bench.hub.split)
    rows = [dict(r) for r in ds]
    check_rows(rows, bench, bench.hub.label())
    return rows


def load_rows(name: str, source: DataSource) -> tuple[list[dict[str, Any]], str]:
    """The checked raw rows of benchmark ``name`` from ``source``, and where they came from."""
    bench = benchmark(name)
    if source.kind == "hub":
        return _hub_rows(bench), bench.hub.label()
    path = source.file_for(name)
    return _checked_file_rows(path, bench), str(path)


def eval_docs(name: str, medmoe_data: str | None = None) -> list[dict[str, Any]]:
    """The rows benchmark ``name``'s task scores: checked, then the benchmark's fixed selection."""
    bench = benchmark(name)
    rows, origin = load_rows(name, resolve_source(medmoe_data))
    docs = bench.select(rows) if bench.select else rows
    if not docs:
        raise DataError(origin, None, None, f"no usable {name} rows ({bench.notes or 'none given'})", "supply rows that pass the selection")
    log.info("%s: %d evaluation rows from %s", name, len(docs), origin)
    return docs


def task_dataset(name: str, medmoe_data: str | None = None, **_metadata: Any) -> datasets.DatasetDict:
    """What a task's ``custom_dataset`` hook returns: the evaluation rows as split ``test``.

    ``_metadata`` takes whatever else lm-eval passes (task metadata, ``--metadata``, model args).
    """
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(eval_docs(name, medmoe_data))})


@lru_cache(maxsize=1)
def pubmedqa_test_ids() -> frozenset[int]:
    """The 500 official PQA-L test pubids (shipped; from upstream ``test_ground_truth.json``)."""
    path = bundled_data_dir() / "pubmedqa_test_pubids.json"
    return frozenset(int(x) for x in json.loads(path.read_text(encoding="utf-8")))


# -- text helpers ----------------------------------------------------------------------------


def best_answer(answers: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-scored answer (the first one on ties), or None when there is none."""
    best = None
    for ans in answers or ():
        if best is None or (ans.get("score") or 0) > (best.get("score") or 0):
            best = ans
    return best


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"p", "br", "div", "li", "ul", "ol", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Stack Exchange HTML to plain text: tags dropped, entities decoded, blocks on their own lines."""
    parser = _TextExtractor()
    parser.feed(markup or "")
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def trim(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` at a whitespace boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > max_chars // 2 else cut


# -- bundled splits for the offline demo -----------------------------------------------------

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
    code = [
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
    problem statements with their asserts, and MBPP solutions. Domains are interleaved; texts
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
        raise DataError("medmoe_lm_eval.sources", None, "split", f"unknown split {split!r}", "use 'train' or 'heldout'")

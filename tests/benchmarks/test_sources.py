"""Data sources: hub / bundled / local folder, row checks, selections, and the demo's splits."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pytest

from medmoe_lm_eval.benchmarks import domains, registry, rows, sources, splits, text
from medmoe_lm_eval.benchmarks.registry import BENCHMARKS
from medmoe_lm_eval.benchmarks.rows import DataError
from medmoe_lm_eval.benchmarks.sources import eval_docs, resolve_source
from medmoe_lm_eval.benchmarks.splits import domain_texts, router_examples
from medmoe_lm_eval.paths import bundled_data_dir

BUNDLED = bundled_data_dir()


def _rows(name: str) -> list[dict]:
    """The bundled rows of benchmark ``name`` (an MMLU subject: its rows of the shared file)."""
    bench = BENCHMARKS.get(name)
    found = rows.read_jsonl(BUNDLED / f"{bench.file_stem if bench else name}.jsonl")
    if bench is not None and bench.subset is not None:
        column, value = bench.subset
        found = [r for r in found if r[column] == value]
    return found


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- the switch ------------------------------------------------------------------------------


def test_source_defaults_to_hub(monkeypatch):
    monkeypatch.delenv("MEDMOE_DATA", raising=False)
    assert resolve_source().kind == "hub"
    assert resolve_source("hub").kind == "hub"


def test_metadata_setting_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDMOE_DATA", str(tmp_path))
    assert resolve_source().directory == tmp_path.resolve()
    assert resolve_source("bundled").directory == BUNDLED


def test_bad_source_is_one_line_error(monkeypatch):
    monkeypatch.setenv("MEDMOE_DATA", "/no/such/folder")
    with pytest.raises(DataError) as err:
        resolve_source()
    msg = str(err.value)
    assert "\n" not in msg and "MEDMOE_DATA" in msg and "'bundled'" in msg and "fix:" in msg


def test_local_folder_in_hub_schema_is_read(tmp_path):
    rows = _rows("medmcqa")[:7]
    _write(tmp_path / "medmcqa.jsonl", rows)
    docs = eval_docs("medmcqa", str(tmp_path))
    assert [d["id"] for d in docs] == [r["id"] for r in rows]


def test_missing_file_names_file_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        eval_docs("mbpp", str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "mbpp.jsonl") in msg and "file not found" in msg
    assert "google-research-datasets/mbpp" in msg and "\n" not in msg


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "medquad.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"medquad\.jsonl: file is empty"):
        eval_docs("medquad", str(tmp_path))


def test_row_missing_field_names_file_row_and_field(tmp_path):
    rows = _rows("medmcqa")[:4]
    del rows[2]["cop"]
    path = _write(tmp_path / "medmcqa.jsonl", rows)
    with pytest.raises(DataError) as err:
        eval_docs("medmcqa", str(tmp_path))
    assert str(err.value).startswith(f"{path}: row 3: field 'cop': is missing; fix:")


def test_nested_field_and_bad_values_are_reported(tmp_path):
    rows = _rows("pubmedqa")[:3]
    rows[1]["context"] = {"labels": []}
    _write(tmp_path / "pubmedqa.jsonl", rows)
    with pytest.raises(DataError, match=r"row 2: field 'context.contexts'"):
        eval_docs("pubmedqa", str(tmp_path))
    rows = _rows("pubmedqa")[:3]
    rows[2]["final_decision"] = "Yes"
    _write(tmp_path / "pubmedqa.jsonl", rows)
    with pytest.raises(DataError, match=r"row 3: field 'final_decision': is 'Yes'"):
        eval_docs("pubmedqa", str(tmp_path))


def test_invalid_json_line_is_reported(tmp_path):
    (tmp_path / "legal_ruleqa.jsonl").write_text('{"question": "q", "answer": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"legal_ruleqa\.jsonl: row 2: is not valid JSON"):
        eval_docs("legal_ruleqa", str(tmp_path))


# -- hub path (the hub is unreachable here: the loader is injected only to see what is asked) --


def test_hub_ids_configs_splits_injected_loader(monkeypatch):
    asked: list[tuple] = []
    bundled = {name: _rows(name) for name in BENCHMARKS}
    test_ids = sorted(registry.pubmedqa_test_ids())[:3]
    # give three bundled PubMedQA rows official test ids: only those may be evaluated
    bundled["pubmedqa"] = [dict(r, pubid=i) for r, i in zip(bundled["pubmedqa"][:3], test_ids, strict=True)] + bundled["pubmedqa"][3:]
    by_hub = {(b.hub.path, b.hub.name): name for name, b in BENCHMARKS.items()}

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        asked.append((path, name, split))
        return datasets.Dataset.from_list(bundled[by_hub[path, name]])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv("MEDMOE_DATA", raising=False)
    docs = {name: eval_docs(name) for name in BENCHMARKS}
    assert sorted(asked) == sorted(
        [
            ("qiaojin/PubMedQA", "pqa_labeled", "train"),
            ("openlifescienceai/medmcqa", None, "validation"),
            ("keivalya/MedQuad-MedicalQnADataset", None, "train"),
            ("ymoslem/Law-StackExchange", None, "train"),
            ("nguha/legalbench", "rule_qa", "test"),
            ("google-research-datasets/mbpp", "full", "test"),
            ("GBaker/MedQA-USMLE-4-options", None, "test"),
            *[("cais/mmlu", subject, "test") for subject in registry.MMLU_MEDICAL_SUBJECTS],
        ]
    )
    assert [d["pubid"] for d in docs["pubmedqa"]] == test_ids
    assert len(docs["medmcqa"]) == len(bundled["medmcqa"])


# -- selections ------------------------------------------------------------------------------


def test_pubmedqa_official_test_ids_are_shipped():
    ids = registry.pubmedqa_test_ids()
    assert len(ids) == 500
    assert not ids & {r["pubid"] for r in _rows("pubmedqa")}  # bundled rows are from the other 500


def test_lawse_best_answer_html_stripped_unanswered_skipped():
    rows = _rows("lawse")
    docs = eval_docs("lawse", "bundled")
    assert all(r["synthetic"] for r in rows)
    assert len(docs) == sum(1 for r in rows if r["answers"]) < len(rows)
    by_id = {d["question_id"]: d for d in docs}
    tenant = by_id[900002]
    assert tenant["best_answer"].startswith("Deadlines are set by state statute")  # score 11 beats 1
    assert "<" not in tenant["best_answer"] and "\n" in tenant["best_answer"]
    assert by_id[900005]["best_answer"].startswith("Generally yes")  # tie on score: the first answer
    assert by_id[900001]["question_text"].startswith("I agreed over the phone")
    assert "§" in by_id[900001]["best_answer"]  # entities decoded


def test_html_to_text():
    html = "<p>First &amp; second.</p><ul><li>one</li><li>two</li></ul><pre>code  x</pre>"
    assert text.html_to_text(html) == "First & second.\none\ntwo\ncode x"


def test_subset_selection_is_deterministic_and_order_free(monkeypatch):
    monkeypatch.setattr(registry, "EVAL_SUBSET", 50)
    rows = _rows("medquad")
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    a = sources.BENCHMARKS["medquad"].select(rows)
    b = sources.BENCHMARKS["medquad"].select(shuffled)
    assert len(a) == 50 and a == b


def test_bundled_files_follow_hub_schema_and_stay_small():
    for name, bench in BENCHMARKS.items():
        sources.check_rows(_rows(name), bench, name)
    total = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
    assert (BUNDLED / "ATTRIBUTION.md").is_file()
    assert {r["task_id"] for r in _rows("mbpp")} <= set(range(511, 601))  # MBPP validation rows
    assert {r["task_id"] for r in rows.read_jsonl(BUNDLED / "train" / "mbpp.jsonl")} <= set(range(601, 975))
    assert [r["task_id"] for r in splits.mbpp_fewshot_docs()] == [2, 3, 4]


# -- demo splits -----------------------------------------------------------------------------


@pytest.mark.parametrize("domain", domains.DOMAINS)
def test_domain_texts_train_and_heldout_are_disjoint(domain):
    train, heldout = domain_texts(domain, "train"), domain_texts(domain, "heldout")
    assert len(train) >= 200 and len(heldout) >= 40
    assert not set(train) & set(heldout)
    assert domain_texts(domain, "heldout") == heldout  # deterministic


def test_heldout_is_the_bundled_evaluation_rows():
    heldout = set(domain_texts("code", "heldout"))
    assert {r["code"].replace("\r\n", "\n").strip() for r in _rows("mbpp")} == heldout
    legal = domain_texts("legal", "heldout")
    assert any(r["answer"].strip() in t for r in _rows("legal_ruleqa") for t in legal)
    assert not any(r["question"] in t for r in _rows("legal_ruleqa") for t in domain_texts("legal", "train"))


def test_router_examples_cover_domains_without_leaks():
    train, heldout = router_examples("train"), router_examples("heldout")
    for split_rows in (train, heldout):
        assert {r["domain"] for r in split_rows} == set(domains.DOMAINS)
        assert all(r["text"] and set(r) == {"text", "domain", "source"} for r in split_rows)
    assert not {r["text"] for r in train} & {r["text"] for r in heldout}
    assert {r["question"] for r in _rows("medmcqa")} <= {r["text"] for r in heldout}
    assert [r["domain"] for r in train[:3]] == ["biomedical", "legal", "code"]  # interleaved


def test_unknown_domain_or_split_is_an_error():
    with pytest.raises(DataError, match="unknown domain"):
        domain_texts("finance", "train")
    with pytest.raises(DataError, match="unknown split"):
        router_examples("test")  # type: ignore[arg-type]

"""Training and judging routers: the TF-IDF default, the shipped router, a transformers classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from medmoe_lm_eval.benchmarks.router_corpus import RELEASE_FILES, TEMPLATED_LEGAL, corpus, medmcqa_text, medqa_text, release_items, unseen_group
from medmoe_lm_eval.benchmarks.rows import read_jsonl
from medmoe_lm_eval.benchmarks.splits import router_examples
from medmoe_lm_eval.harness.config import parse_adapter
from medmoe_lm_eval.harness.routing.evaluation import evaluate_router
from medmoe_lm_eval.harness.routing.router import Router
from medmoe_lm_eval.harness.routing.router_file import write_router_json
from medmoe_lm_eval.harness.routing.scorers import load_scorer
from medmoe_lm_eval.harness.routing.training import bundled_examples, fit_classifier, fit_scale, train_classifier, train_transformers
from medmoe_lm_eval.paths import bundled_adapters_dir, bundled_data_dir

SHIPPED = bundled_adapters_dir() / "routers" / "default_router.json"


def medmoe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medmoe_lm_eval", *args], capture_output=True, text=True, timeout=300)


def test_train_and_eval_router_cli_on_bundled_data(tmp_path):
    out = tmp_path / "router.json"
    rows = tmp_path / "train.jsonl"
    proc = medmoe("train-router", "--data", "bundled", "--out", str(out), "--write-data", str(rows))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and json.loads(Path(f"{out}.report.json").read_text())["train_rows"] == len(rows.read_text().splitlines())
    report_file = tmp_path / "eval.json"
    proc = medmoe("eval-router", "--router", str(out), "--data", "bundled", "--json", str(report_file))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "biomedical" in proc.stdout
    report = json.loads(report_file.read_text())
    assert report["accuracy"] >= 0.97 and report["macro_f1"] >= 0.95
    assert "recall per domain: biomedical" in proc.stdout
    assert sum(map(sum, report["confusion"])) == report["rows"] == len(bundled_examples("heldout"))
    assert report["median_ms_per_query"] > 0 and report["median_ms_single_query"] > 0


def test_train_router_rejects_bad_rows_in_one_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "a patient", "domain": "biomedical"}\n{"text": "", "domain": "legal"}\n')
    proc = medmoe("train-router", "--data", str(data), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "row 2" in proc.stderr and "'text'" in proc.stderr


def test_shipped_default_router_routes_held_out_questions():
    assert SHIPPED.is_file(), "model_adapters/routers/default_router.json is shipped with the project"
    report = evaluate_router(SHIPPED, bundled_examples("heldout"))
    assert report["accuracy"] >= 0.97


def test_classifier_router_in_an_adapter(tmp_path):
    path = tmp_path / "r.json"
    train_classifier(bundled_examples("train")[:600], path)
    experts = [{"name": d, "domain": d, "model": str(tmp_path)} for d in ("biomedical", "legal", "code")]
    router = Router(parse_adapter({"name": "m", "kind": "moe", "experts": experts, "router": {"type": "classifier", "path": str(path), "top_k": 2}}, "m.yaml"))
    routes = router.route(
        ["A 60-year-old man presents with chest pain and dyspnea.", "def is_prime(n):\n    return all(n % k for k in range(2, n))"], [None, None]
    )
    assert routes[0].top == "biomedical" and routes[1].top == "code"
    assert all(len(r.experts) <= 2 and sum(r.weights) == pytest.approx(1.0) for r in routes)


def test_router_missing_a_domain_is_rejected(tmp_path):
    path = tmp_path / "r.json"
    train_classifier([r for r in bundled_examples("train") if r["domain"] != "code"][:400], path)
    experts = [{"name": d, "domain": d, "model": str(tmp_path)} for d in ("biomedical", "legal", "code")]
    with pytest.raises(ValueError, match="not \\['code'\\]"):
        Router(parse_adapter({"name": "m", "kind": "moe", "experts": experts, "router": {"type": "classifier", "path": str(path)}}, "m.yaml"))


@pytest.mark.slow
def test_transformers_sequence_classifier_router(tmp_path, tiny_model_dir):
    rows = bundled_examples("train")[::12]
    out = tmp_path / "tf_router"
    report = train_transformers(rows, tiny_model_dir, out, epochs=1, batch_size=16, max_length=64)
    assert report["train_rows"] == len(rows) and report["final_loss"] is not None
    scorer = load_scorer(out)
    probs = scorer.predict_proba(["a patient with fever", "def f(x): return x"])
    assert probs.shape == (2, 3) and probs.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    adapter = tmp_path / "a.yaml"
    experts = [{"name": d, "domain": d, "model": str(tiny_model_dir)} for d in ("biomedical", "legal", "code")]
    adapter.write_text(yaml.safe_dump({"name": "tf", "kind": "moe", "experts": experts, "router": {"type": "classifier", "path": str(out)}}))
    from medmoe_lm_eval.harness.config import load_adapter

    assert len(Router(load_adapter(adapter)).route(["q"], [None])) == 1


# -- the shipped router and its data -------------------------------------------------------------

#: the data release the shipped router is trained from (``MEDMOE_RELEASE_DATA`` or ../shared/data)
RELEASE = Path(os.environ.get("MEDMOE_RELEASE_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
needs_release = pytest.mark.skipif(not (RELEASE / "medqa" / "dev.jsonl").is_file(), reason="the data release folder is not on this machine")
LEGAL_QUERIES = [
    "What are adoptive admissions under the Federal Rules of Evidence?",
    "...which we now overrule.",
    "Is an oral contract for the sale of land enforceable under the statute of frauds?",
]


@pytest.mark.xfail(strict=True, reason="known gap: short 'What is the X rule?' legal questions take MedQuAD's question template to biomedical")
def test_shipped_router_routes_short_what_is_legal_questions_legal():
    """No legal question is learnt (LegalBench rule_qa are evaluation rows), and character n-grams of
    "What is" carry MedQuAD's "What is (are) ...?" template: the shipped router sends these to the
    biomedical expert (p about 0.96). Strict: when a fix routes them right, this test says so."""
    scorer = load_scorer(SHIPPED)
    probs = scorer.predict_proba(["What is the Bruton rule?", "What is the hearsay rule?"])
    assert [scorer.domains[i] for i in probs.argmax(axis=1)] == ["legal", "legal"]


def test_shipped_router_routes_legal_questions_legal():
    scorer = load_scorer(SHIPPED)
    probs = scorer.predict_proba(LEGAL_QUERIES)
    assert [scorer.domains[i] for i in probs.argmax(axis=1)] == ["legal"] * len(LEGAL_QUERIES)
    assert [
        scorer.domains[i] for i in scorer.predict_proba(["A 45-year-old woman presents with jaundice.", "def add(a, b):\n    return a + b"]).argmax(axis=1)
    ] == ["biomedical", "code"]


def test_shipped_router_is_json_with_versions_and_its_report():
    payload = json.loads(SHIPPED.read_text(encoding="utf-8"))  # plain JSON: reading it runs no code
    assert payload["kind"] == "medmoe-router" and payload["format"] == 3
    assert [b["analyzer"] for b in payload["features"]] == ["word", "char_wb"] and payload["calibration"]["scale"] > 1
    assert set(payload["versions"]) >= {"scikit-learn", "numpy", "scipy", "python"}
    report = json.loads(Path(f"{SHIPPED}.report.json").read_text())
    assert set(report["train_rows_per_domain"]) == {"biomedical", "legal", "code"}
    for part in ("heldout", "unseen", "unseen_bundled_router"):
        judged = report[part]
        assert sum(map(sum, judged["confusion"])) == judged["rows"] > 500
        assert judged["labels"] == ["biomedical", "code", "legal"] and 0.9 < judged["macro_f1"] <= judged["accuracy"] + 0.02
    assert "medmcqa" not in report["train_rows_per_source"]
    # the targets (issue 26) on the unseen queries
    assert report["unseen"]["rows"] > 12000 and report["unseen"]["accuracy"] >= 0.995 and min(report["unseen"]["accuracy_per_domain"].values()) >= 0.99
    assert report["unseen_bundled_router"]["accuracy"] >= 0.97


def test_json_router_scores_as_the_fitted_scikit_learn_model(tmp_path):
    import scipy.sparse
    from scipy.special import softmax

    rows = bundled_examples("train")[::5]
    vectorizers, classifier, scale = fit_classifier(rows)
    texts = [r["text"] for r in bundled_examples("heldout")[:200]] + ["", "unknownword"]
    margins = classifier.decision_function(scipy.sparse.hstack([v.transform(texts) for v in vectorizers], format="csr"))
    path = tmp_path / "r.json"
    write_router_json(path, vectorizers, classifier, {}, scale)
    scorer = load_scorer(path)
    assert scorer.domains == list(classifier.classes_)
    assert scorer.predict_proba(texts) == pytest.approx(softmax(scale * margins, axis=1), abs=1e-4)
    assert [scorer.domains[i] for i in margins.argmax(axis=1)] == [scorer.domains[i] for i in scorer.predict_proba(texts).argmax(axis=1)]


def _block(analyzer: str, terms: list[str], idf: list[float]) -> dict:
    extra = {"token_pattern": r"(?u)\b\w\w+\b", "stop_words": ["the"]} if analyzer == "word" else {}
    return {
        "analyzer": analyzer,
        "ngram_range": [1, 1] if analyzer == "word" else [2, 2],
        "lowercase": True,
        **extra,
        "sublinear_tf": True,
        "norm": "l2",
        "terms": terms,
        "idf": idf,
    }


def test_router_file_probabilities_by_hand(tmp_path):
    """Two blocks, two domains, by hand. Query "the fee fee":
    words: "the" is a stop word; fee counted twice -> 1 + ln 2 = 1.6931, times idf 2 -> L2 -> [fee 1, law 0];
    char_wb bigrams of " fee ": " f", "fe", "ee", "e "; in the vocabulary "fe" and "ee", once each ->
    times idf [1, 1] -> L2 -> [0.7071, 0.7071]. Logits: biomedical 1*0 + 0 = 0,
    legal 1*2 + 0.7071*1 + 0.7071*1 + 0 = 3.4142; scale 0.5: softmax([0, 1.7071]) = [0.1536, 0.8464]."""
    payload = {
        "kind": "medmoe-router",
        "format": 3,
        "domains": ["biomedical", "legal"],
        "features": [_block("word", ["fee", "law"], [2.0, 1.0]), _block("char_wb", ["fe", "ee"], [1.0, 1.0])],
        "linear": {"coef": [[0, 0, 0, 0], [2, 0, 1, 1]], "intercept": [0, 0]},
        "calibration": {"scale": 0.5},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(payload))
    probs = load_scorer(path).predict_proba(["the fee fee", "nothing"])
    assert probs[0] == pytest.approx([0.1536, 0.8464], abs=1e-4)
    assert probs[1] == pytest.approx([0.5, 0.5])  # no known feature: logits 0, 0
    # format 2 (one word block in "vectorizer", no calibration) is still read: softmax([0, 2]) = [0.1192, 0.8808]
    old = {"kind": "medmoe-router", "format": 2, "domains": ["biomedical", "legal"], "vectorizer": _block("word", ["fee", "law"], [2.0, 1.0])}
    old["linear"] = {"coef": [[0, 0], [2, 0]], "intercept": [0, 0]}
    path.write_text(json.dumps(old))
    assert load_scorer(path).predict_proba(["the fee fee"])[0] == pytest.approx([0.1192, 0.8808], abs=1e-4)


def test_calibration_scale_by_hand():
    """Margins [1, 0] on four rows, three of them of class 0: the likeliest softmax(s * [1, 0]) gives
    p(0) = sigmoid(s) = 3/4, so s = ln 3."""
    margins = np.array([[1.0, 0.0]] * 4)
    assert fit_scale(margins, np.array([0, 0, 0, 1])) == pytest.approx(np.log(3), abs=1e-3)


def test_router_trained_on_the_bundled_samples_meets_the_target_on_held_out_rows(tmp_path):
    """The issue 26 target for `train-router --data bundled`: >= 0.97 on rows it never saw. Legal is its
    weakest domain (0.93 here: the 25 rule_qa questions are the only legal questions, and it learnt
    none), code and biomedical route right."""
    path = tmp_path / "r.json"
    train_classifier(bundled_examples("train"), path)
    report = evaluate_router(path, router_examples("heldout"))
    assert report["accuracy"] >= 0.97 and min(report["accuracy_per_domain"].values()) >= 0.9, report["accuracy_per_domain"]
    assert report["accuracy_per_domain"]["code"] >= 0.99 and report["accuracy_per_domain"]["biomedical"] >= 0.99


CLEAR_QUERIES = {
    "code": [
        "Write a python function to find the volume of a triangular prism.",
        "Write a function to reverse a linked list in place.",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    ],
    "biomedical": [
        "What are the symptoms of type 2 diabetes?",
        "A 45-year-old woman presents with jaundice and right upper quadrant pain.",
        "Which drug is the first-line treatment for anaphylaxis?",
    ],
    "legal": [
        "Is an oral contract for the sale of land enforceable under the statute of frauds?",
        "This Agreement shall be governed by the laws of the State of New York.",
        "Can a landlord evict a tenant without a court order?",
    ],
}


def test_shipped_router_routes_clear_queries_of_each_domain_with_high_probability():
    scorer = load_scorer(SHIPPED)
    for domain, queries in CLEAR_QUERIES.items():
        probs = scorer.predict_proba(queries)
        assert [scorer.domains[i] for i in probs.argmax(axis=1)] == [domain] * len(queries), (domain, probs)
        assert probs[:, scorer.domains.index(domain)].min() >= 0.8, (domain, probs)


# -- the unseen queries of the data release ----------------------------------------------------


@needs_release
def test_unseen_queries_are_disjoint_from_training_and_the_bundle():
    train, unseen = corpus(RELEASE, "train"), corpus(RELEASE, "unseen")
    unseen_texts = {r["text"] for r in unseen}
    assert len(unseen) > 12000 and {r["domain"] for r in unseen} == {"biomedical", "legal", "code"}
    assert not unseen_texts & {r["text"] for r in train}
    assert not unseen_texts & {r["text"].strip() for r in router_examples("train")}
    bundled = {r["text"].strip() for r in read_jsonl(bundled_data_dir() / "legalbench_texts.jsonl")}
    bundled |= {medqa_text(r).strip() for r in read_jsonl(bundled_data_dir() / "medqa.jsonl")}
    bundled |= {r["Question"].strip() for name in ("medquad", "train/medquad") for r in read_jsonl(bundled_data_dir() / f"{name}.jsonl")}
    assert not unseen_texts & bundled
    # MBPP is bundled whole: its code queries are the evaluation rows no router learns from
    assert {r["source"] for r in unseen if r["domain"] == "code"} == {"mbpp"}
    assert not {r["text"] for r in unseen if r["domain"] == "code"} & {r["text"] for r in router_examples("train")}
    # MedMCQA and the templated LegalBench tasks are never learnt by the shipped router
    assert not [r for r in train if r["source"] == "medmcqa" or r["source"].startswith(tuple("legalbench/" + t for t in TEMPLATED_LEGAL))]


@needs_release
def test_a_group_of_near_copies_lies_on_one_side():
    items = [it for it in release_items(RELEASE) if it.kind == "free"]
    by_group: dict[str, set[bool]] = {}
    for it in items:
        by_group.setdefault(it.group, set()).add(unseen_group(it.group))
    assert all(len(sides) == 1 for sides in by_group.values())
    # a PubMedQA record's question and abstract are one group; texts equal up to case and digits too
    assert any(len([it for it in items if it.group == g]) > 1 for g in by_group if g.startswith("pubmedqa/"))


@needs_release
def test_release_corpus_never_holds_evaluation_rows():
    train = corpus(RELEASE, "train")
    texts = {r["text"] for r in train}
    bundled_medqa = read_jsonl(bundled_data_dir() / "medqa.jsonl")
    assert not texts & {medqa_text(r).strip() for r in bundled_medqa}
    assert not texts & {medmcqa_text(r).strip() for r in read_jsonl(RELEASE / "medmcqa/validation_part1.jsonl")}
    assert not texts & {r["question"].strip() for r in read_jsonl(RELEASE / "legalbench_rule_qa/rule_qa_part1.jsonl")}
    assert not {r["text"].strip() for r in read_jsonl(RELEASE / "legalbench_texts/texts_part1.jsonl") if r["task"] == "rule_qa"} & texts
    sources = {r["source"].split("/")[0] for r in train}
    assert sources == {"medqa", "mmlu", "pubmedqa", "medquad", "legalbench", "mbpp"}
    questions = {r["question"] for r in bundled_medqa}
    learnt = [r for r in read_jsonl(RELEASE / "medqa/dev.jsonl") if r["question"] not in questions and not unseen_group("medqa/" + r["question"])]
    assert sum(r["source"] == "medqa" for r in train) == len(learnt) > 100
    unseen = corpus(RELEASE, "unseen")
    assert not texts & {r["text"] for r in unseen} and {r["domain"] for r in unseen} == {"biomedical", "legal", "code"}


@needs_release
def test_train_router_cli_on_a_release_folder(tmp_path):
    release = tmp_path / "release"
    for relpath in RELEASE_FILES:  # the first rows of every file: the same layout, seconds to train
        (release / relpath).parent.mkdir(parents=True, exist_ok=True)
        lines = (RELEASE / relpath).read_text(encoding="utf-8").splitlines(keepends=True)
        (release / relpath).write_text("".join(lines[:150]), encoding="utf-8")
    out = tmp_path / "router.json"
    proc = medmoe("train-router", "--data", str(release), "--out", str(out), "--holdout", "0.2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["heldout"]["share"] == 0.2 and report["heldout"]["train_rows"] + report["heldout"]["rows"] == report["train_rows"]
    assert sum(map(sum, report["unseen"]["confusion"])) == report["unseen"]["rows"] == len(corpus(release, "unseen"))
    assert json.loads(out.read_text())["report"]["heldout"] == report["heldout"]


@pytest.mark.slow
def test_unsure_requests_fall_back_in_a_real_run_and_the_log_says_so(tmp_path, tiny_experts, tiny_model_dir):
    """medmoe on MedQA with a keyword router and a threshold: documents whose prompt names only
    "patient" go to the biomedical expert; the others (no keyword, or a second domain's) to the
    generalist, and every one of their requests is logged as a fallback."""
    import lm_eval

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager

    register()
    experts = [{"name": d[:3], "domain": d, "model": str(p), "device": "cpu"} for d, p in tiny_experts.items()]
    experts.append({"name": "gen", "domain": "general", "model": str(tiny_model_dir), "device": "cpu"})
    keywords = {"biomedical": ["patient"], "legal": ["court"], "code": ["def "]}
    adapter = tmp_path / "unsure.yaml"
    router = {"type": "keywords", "keywords": keywords, "threshold": 0.99, "fallback": "gen"}
    adapter.write_text(yaml.safe_dump({"name": "unsure", "kind": "moe", "experts": experts, "router": router}))
    limit = 8
    results = lm_eval.simple_evaluate(
        model="medmoe",
        model_args={"adapter": str(adapter), "log_dir": str(tmp_path / "logs")},
        tasks=["medmoe_medqa"],
        task_manager=task_manager(),
        limit=limit,
        batch_size=1,
        device="cpu",
        bootstrap_iters=0,
        metadata={"medmoe_data": "bundled"},
    )
    rows = read_jsonl(bundled_data_dir() / "medqa.jsonl")[:limit]
    only_patient = [
        ("patient" in r["question"].lower() or any("patient" in o.lower() for o in r["options"].values()))
        and not any(w in (r["question"] + " ".join(r["options"].values())).lower() for w in ("court", "def "))
        for r in rows
    ]
    assert 0 < sum(only_patient) < limit  # both kinds of document occur in these rows
    (log_file,) = (tmp_path / "logs").rglob("*.jsonl")
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(logged) == 4 * limit  # four options per question
    for rec in logged:
        sure = only_patient[rec["doc_id"]]
        assert rec["fallback"] is (not sure) and rec["experts"] == (["bio"] if sure else ["gen"]), rec
    summary = results["config"]["medmoe"]["routing"]["per_task"]["medmoe_medqa"]
    assert summary["fallbacks"] == 4 * (limit - sum(only_patient))

"""Training and judging routers: the TF-IDF default, the shipped router, a transformers classifier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medmoe_lm_eval.harness.config import parse_adapter
from medmoe_lm_eval.harness.routing.evaluation import evaluate_router
from medmoe_lm_eval.harness.routing.router import Router
from medmoe_lm_eval.harness.routing.scorers import load_scorer
from medmoe_lm_eval.harness.routing.training import bundled_examples, train_classifier, train_transformers
from medmoe_lm_eval.paths import bundled_adapters_dir

SHIPPED = bundled_adapters_dir() / "routers" / "default_router.joblib"


def medmoe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medmoe_lm_eval", *args], capture_output=True, text=True, timeout=300)


def test_train_and_eval_router_cli_on_bundled_data(tmp_path):
    out = tmp_path / "router.joblib"
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
    assert sum(map(sum, report["confusion"])) == report["rows"] == len(bundled_examples("heldout"))
    assert report["median_ms_per_query"] > 0 and report["median_ms_single_query"] > 0


def test_train_router_rejects_bad_rows_in_one_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "a patient", "domain": "biomedical"}\n{"text": "", "domain": "legal"}\n')
    proc = medmoe("train-router", "--data", str(data), "--out", str(tmp_path / "r.joblib"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "row 2" in proc.stderr and "'text'" in proc.stderr


def test_shipped_default_router_routes_held_out_questions():
    assert SHIPPED.is_file(), "model_adapters/routers/default_router.joblib is shipped with the project"
    report = evaluate_router(SHIPPED, bundled_examples("heldout"))
    assert report["accuracy"] >= 0.97


def test_classifier_router_in_an_adapter(tmp_path):
    path = tmp_path / "r.joblib"
    train_classifier(bundled_examples("train")[:600], path)
    experts = [{"name": d, "domain": d, "model": str(tmp_path)} for d in ("biomedical", "legal", "code")]
    router = Router(parse_adapter({"name": "m", "kind": "moe", "experts": experts, "router": {"type": "classifier", "path": str(path), "top_k": 2}}, "m.yaml"))
    routes = router.route(
        ["A 60-year-old man presents with chest pain and dyspnea.", "def is_prime(n):\n    return all(n % k for k in range(2, n))"], [None, None]
    )
    assert routes[0].top == "biomedical" and routes[1].top == "code"
    assert all(len(r.experts) <= 2 and sum(r.weights) == pytest.approx(1.0) for r in routes)


def test_router_missing_a_domain_is_rejected(tmp_path):
    path = tmp_path / "r.joblib"
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

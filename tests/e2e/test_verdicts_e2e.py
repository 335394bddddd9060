"""Verdicts on real lm-eval runs: tiny models through ``evaluate_candidate`` (the demo's path).

Runs on the bundled MedMCQA sample (24 questions): ``twin-a`` and ``twin-b`` are the same expert
under two adapter names, ``legal`` another expert, and ``twin-a`` is re-run with ``--limit 5``
after its full run. The expected McNemar p-value is computed by hand from lm-eval's own
per-sample logs, read here with ``json`` (not the store).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medmoe_lm_eval.cli import main
from medmoe_lm_eval.store.results import load_results

TASK = "medmoe_medmcqa"
N = 24


def _adapter(folder: Path, name: str, model: Path) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nkind: single\nexperts:\n  - {{name: e, domain: biomedical, backend: hf, model: '{model}', device: cpu}}\n", encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_experts) -> Path:
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    work = tmp_path_factory.mktemp("verdicts")
    out = work / "results"
    bio, legal = tiny_experts["biomedical"], tiny_experts["legal"]
    for name, model in (("twin-a", bio), ("twin-b", bio), ("legal", legal)):
        evaluate_candidate(_adapter(work, name, model), [TASK], out, name, limit=N, device="cpu")
    evaluate_candidate(work / "twin-a.yaml", [TASK], out, "twin-a", limit=5, device="cpu")  # a smoke run after the full one
    return out


def _json(capsys, argv: list[str]):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _samples(out: Path, candidate: str) -> dict[int, float]:
    """doc_id -> acc from the candidate's full run's per-sample log, read as plain JSON lines."""
    files = sorted((out / candidate).glob(f"samples_{TASK}_*.jsonl"))
    full = [f for f in files if sum(1 for _ in f.open(encoding="utf-8")) == N]
    assert len(full) == 1, files
    return {json.loads(line)["doc_id"]: json.loads(line)["acc"] for line in full[0].open(encoding="utf-8")}


def test_demo_runs_keep_per_sample_logs_and_task_hashes(runs):
    results = sorted((runs / "twin-a").glob("results_*.json"))
    assert len(results) == 2
    for path in results:
        stamp = path.stem.removeprefix("results_")
        data = json.loads(path.read_text(encoding="utf-8"))
        assert (path.parent / f"samples_{TASK}_{stamp}.jsonl").is_file()
        assert len(data["task_hashes"][TASK]) == 64 and "samples" not in data
    line = json.loads(next((runs / "twin-a").glob(f"samples_{TASK}_*.jsonl")).open(encoding="utf-8").readline())
    assert {"doc_id", "doc_hash", "acc", "filtered_resps"} <= set(line) and len(line["filtered_resps"]) == 4


def test_a_limit_5_run_after_a_full_run_leaves_the_full_run_on_the_board(runs):
    res = load_results(runs)
    row = res.frame[(res.frame["candidate"] == "twin-a") & (res.frame["metric"] == "acc")]
    assert len(row) == 1 and row["n_samples"].iloc[0] == N
    assert row["data_source"].iloc[0] == "bundled" and row["samples_file"].iloc[0].endswith(".jsonl")
    apart = res.apart[res.apart["candidate"] == "twin-a"]
    assert set(apart["n_samples"]) == {5} and all("limit 5" in v for v in apart["variant"])
    assert any("shown apart, not merged" in i.message and "limit 5" in i.message for i in res.issues if i.file == "twin-a")


def test_two_runs_of_the_same_model_compare_as_tied(runs, capsys):
    out = _json(capsys, ["compare", "--results", str(runs), "twin-a", "twin-b", "--json"])
    (row,) = out["tasks"]
    assert set(row) >= {"task", "metric", "a", "b", "delta", "ci_low", "ci_high", "p_value", "p_holm", "n_paired"}
    assert (row["task"], row["metric"], row["n_paired"]) == (TASK, "acc", N)
    assert row["delta"] == 0 and row["ci_low"] == 0 and row["ci_high"] == 0 and row["p_value"] == 1 and row["p_holm"] == 1
    assert row["verdict"] == "no significant difference"


def test_compare_p_value_matches_mcnemar_by_hand_on_the_logged_samples(runs, capsys):
    a, b = _samples(runs, "twin-a"), _samples(runs, "legal")
    only_a = sum(1 for d in a if a[d] == 1 and b[d] == 0)
    only_b = sum(1 for d in a if a[d] == 0 and b[d] == 1)
    n, k = only_a + only_b, min(only_a, only_b)
    by_hand = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    (row,) = _json(capsys, ["compare", "--results", str(runs), "twin-a", "legal", "--json"])["tasks"]
    assert row["p_value"] == pytest.approx(by_hand, abs=1e-12) and row["p_holm"] == pytest.approx(by_hand, abs=1e-12)
    assert row["delta"] == pytest.approx((sum(b.values()) - sum(a.values())) / N)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]


def test_rank_json_has_intervals_and_tie_marks(runs, capsys, tmp_path):
    cases = tmp_path / "use_cases.yaml"
    cases.write_text(f"use_cases:\n  mcq:\n    name: MCQ\n    tasks: [{TASK}]\n    weights: {{accuracy: 1}}\n", encoding="utf-8")
    out = _json(capsys, ["rank", "--results", str(runs), "--use-case", "mcq", "--use-cases", str(cases), "--json"])
    rows = out["candidates"]
    assert out["use_case"] == "mcq" and isinstance(out["notes"], list)
    assert [
        set(r) >= {"candidate", "rank", "rank_low", "rank_high", "score", "tied_with_leader", "tasks", "n_items", "excluded_reason", "notes"} for r in rows
    ] == [True] * 3
    by_name = {r["candidate"]: r for r in rows}
    assert by_name["twin-a"]["score"] == by_name["twin-b"]["score"] and by_name["twin-a"]["rank"] == by_name["twin-b"]["rank"]
    assert all(r["tasks"] == [TASK] and r["n_items"] == N and r["excluded_reason"] is None for r in rows)
    assert all(r["rank_low"] <= r["rank"] <= r["rank_high"] for r in rows)
    twins = [(by_name[t]["rank_low"], by_name[t]["rank_high"], by_name[t]["tied_with_leader"]) for t in ("twin-a", "twin-b")]
    assert twins[0] == twins[1]  # identical answers: never told apart, one rank number and range
    if by_name["twin-a"]["rank"] == 1:
        assert twins[0][2]  # the two leaders are tied with each other
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_medmoe_eval_keeps_samples_and_records_the_data_source(tmp_path, monkeypatch, tiny_experts):
    """A real ``medmoe eval`` without ``--log_samples``: the samples are kept, the source recorded."""
    monkeypatch.setenv("MEDMOE_DATA", "bundled")
    adapter = _adapter(tmp_path, "cli-run", tiny_experts["biomedical"])
    argv = [
        "eval",
        "--model",
        "medmoe",
        "--model_args",
        f"adapter={adapter}",
        "--tasks",
        TASK,
        "--limit",
        "3",
        "--device",
        "cpu",
        "--output_path",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    (results,) = (tmp_path / "out" / "cli-run").glob("results_*.json")
    assert (results.parent / f"samples_{TASK}_{results.stem.removeprefix('results_')}.jsonl").is_file()
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["config"]["medmoe"]["medmoe_data"] == "bundled" and len(data["task_hashes"][TASK]) == 64  # recorded by the model
    row = load_results(tmp_path / "out").frame.iloc[0]
    assert (row["data_source"], row["limit"], row["n_samples"]) == ("bundled", 3.0, 3.0) and row["samples_file"]

"""``medmoe ask`` end to end on tiny local models, and ensembles as candidates.

The command runs as a real subprocess (``python -m medmoe_lm_eval ask``): one-shot, and the
interactive loop driven through its standard input (an empty line, a 100 KB question, a second
domain, ``exit``). Gate weights are checked against the shipped router's probabilities
renormalised by hand, and answers against lm-eval's own ``HFLM.generate_until`` of the expert
alone. In-process checks cover ensembles: generation by the highest-weight expert, and the
shipped biomedical ensemble adapter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medmoe_lm_eval.paths import bundled_adapters_dir

REPO = Path(__file__).resolve().parents[2]
ROUTER = bundled_adapters_dir() / "routers" / "default_router.json"
CHEST_PAIN = "A 54-year-old with crushing chest pain radiating to the left arm, sweating and nausea. What is the diagnosis?"
CONTRACT = "Is a contract signed under duress void or voidable, and which court hears the claim?"
HUGE = "A patient with chest pain takes warfarin at a high dose and reports bleeding gums. " * 1250  # ~104 KB
SHARED_WEIGHT = 0.2


def _expert(name: str, domain: str, path: Path) -> dict:
    return {"name": name, "domain": domain, "backend": "hf", "model": str(path), "device": "cpu"}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_experts, tiny_model_dir) -> dict[str, Path]:
    """A routed mixture (shipped classifier, top-2, shared generalist), ensembles, a broken one."""
    folder = tmp_path_factory.mktemp("ask_adapters")
    bio, law, code = (_expert(n, d, tiny_experts[d]) for n, d in (("bio", "biomedical"), ("law", "legal"), ("code", "code")))
    general = _expert("general", "general", tiny_model_dir)
    docs = {
        "routed": {"name": "tiny-routed", "kind": "moe", "experts": [bio, law, code, general], "router": {"type": "classifier", "path": str(ROUTER), "top_k": 2}, "shared_expert": {"name": "general", "weight": SHARED_WEIGHT}},
        "ensemble": {"name": "tiny-ensemble", "kind": "moe", "experts": [bio, law], "router": {"type": "fixed", "weights": {"bio": 1, "law": 3}}},
        "uniform": {"name": "tiny-uniform", "kind": "moe", "experts": [law, bio], "router": {"type": "uniform"}},
        "law-alone": {"name": "tiny-law", "kind": "single", "experts": [law]},
        "missing": {"name": "tiny-missing", "kind": "single", "experts": [{**bio, "model": "./no-such-model"}]},
        "oracle": {"name": "tiny-oracle", "kind": "moe", "experts": [bio, law], "router": {"type": "oracle"}},
    }  # fmt: skip
    out = {}
    for key, doc in docs.items():
        out[key] = folder / f"{key}.yaml"
        out[key].write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def ask(*args: str, stdin: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """``medmoe ask`` exactly as a user runs it, in its own process."""
    env = dict(os.environ, COLUMNS="200", PYTHONIOENCODING="utf-8", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, "-m", "medmoe_lm_eval", "ask", *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def expected_gate(question: str) -> dict[str, float]:
    """The routed mixture's weights by hand: top-2 of the router's p(domain), renormalised,
    scaled by 1 - shared weight; the shared generalist keeps its own weight."""
    from medmoe_lm_eval.harness.routing.scorers import load_scorer

    scorer = load_scorer(ROUTER)
    probs = dict(zip(scorer.domains, scorer.predict_proba([question])[0]))
    names = {"biomedical": "bio", "legal": "law", "code": "code"}
    (d1, p1), (d2, p2) = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
    gate = {n: 0.0 for n in names.values()} | {"general": SHARED_WEIGHT}
    gate[names[d1]] = (1 - SHARED_WEIGHT) * p1 / (p1 + p2)
    gate[names[d2]] = (1 - SHARED_WEIGHT) * p2 / (p1 + p2)
    return gate


def gate_rows(stdout: str) -> list[dict[str, str]]:
    """The rows of every gate table printed (expert, weight, bar, p(expert|question), active)."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 5:
            rows.append(dict(zip(("expert", "weight", "bar", "prob", "active"), cells)))
    return rows


def answers(stdout: str) -> list[tuple[str, str]]:
    """``(expert, answer text)`` for every answer printed."""
    return re.findall(r"^(\S+) answers: (.*?)\n(?=note:|generation )", stdout, flags=re.M | re.S)


def alone(model: Path, question: str, max_new_tokens: int) -> str:
    """The expert alone through lm-eval's own generation path (no streaming, no medmoe code)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from medmoe_lm_eval.harness.consult import PROMPT, STOPS

    lm = HFLM(pretrained=str(model), device="cpu", batch_size=1)
    request = Instance("generate_until", {}, (PROMPT.format(question=question), {"until": STOPS, "max_gen_toks": max_new_tokens, "do_sample": False}), 0)
    return lm.generate_until([request], disable_tqdm=True)[0]


def squashed(text: str) -> str:
    """Text without whitespace: the terminal expands tabs, the comparison must not care."""
    return "".join(text.split())


def test_one_shot_prints_gate_activation_streamed_answer_and_latency(adapters, tiny_experts):
    out = ask("--adapter", str(adapters["routed"]), "--max-new-tokens", "12", CHEST_PAIN)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "not medical or legal advice" in out.stdout
    rows = gate_rows(out.stdout)
    assert next(r["expert"] for r in rows) == "bio" and {r["expert"] for r in rows} == {"bio", "law", "code", "general"}
    gate = expected_gate(CHEST_PAIN)
    for row in rows:
        assert float(row["weight"]) == pytest.approx(gate[row["expert"]], abs=1e-3), row
        assert len(row["bar"]) == round(float(row["weight"]) * 30), row  # the bar chart is the weight
    roles = {r["expert"]: r["active"] for r in rows}
    second = max(("law", "code"), key=gate.get)
    assert roles == {"bio": "top", second: "routed", ({"law", "code"} - {second}).pop(): "", "general": "shared"}
    activated = next(line for line in out.stdout.splitlines() if line.startswith("activated:"))
    assert re.search(r"bio \d\.\d\d \(top\) · \w+ \d\.\d\d \(routed\) · general 0\.20 \(shared\) · routing \d+\.\d\d ms", activated), activated
    assert "loaded expert 'bio'" in out.stdout and "loaded expert 'law'" not in out.stdout  # only the expert the answer needs
    ((expert, text),) = answers(out.stdout)
    assert expert == "bio"
    assert squashed(text) == squashed(alone(tiny_experts["biomedical"], CHEST_PAIN, 12))
    assert re.search(r"^generation \d+\.\d\d s · \d+ tokens · \d+\.\d tokens/s$", out.stdout, flags=re.M)


def test_interactive_loop_keeps_experts_loaded_through_empty_huge_and_new_domain_questions(adapters, tiny_experts):
    from transformers import AutoConfig

    lines = [CHEST_PAIN, "", HUGE, CONTRACT, "Which organ pumps blood?", "exit", "never asked"]
    assert len(HUGE.encode()) > 100_000
    out = ask("--adapter", str(adapters["routed"]), "--max-new-tokens", "8", stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr[-3000:]
    given = answers(out.stdout)
    assert [e for e, _ in given] == ["bio", "bio", "law", "bio"]  # "never asked" came after exit
    assert out.stdout.count("type a question, or exit") == 1  # the empty line
    window = AutoConfig.from_pretrained(str(tiny_experts["biomedical"])).max_position_embeddings
    note = f"note: question truncated to its last {window - 8} tokens: expert 'bio' has a {window}-token window and 8 are kept for the answer"
    assert out.stdout.count(note) == 1, out.stdout[-2000:]
    # each expert loaded once, when a question first needed it; the code expert never
    assert out.stdout.count("loaded expert 'bio'") == 1 and out.stdout.count("loaded expert 'law'") == 1
    assert "loaded expert 'code'" not in out.stdout and "loaded expert 'general'" not in out.stdout
    assert squashed(given[2][1]) == squashed(alone(tiny_experts["legal"], CONTRACT, 8))


def test_empty_question_missing_expert_file_and_oracle_without_task_are_one_line_errors(adapters):
    empty = ask("--adapter", str(adapters["routed"]), "   ")
    assert empty.returncode == 2
    assert empty.stderr.strip().splitlines() == ["error: empty question; fix: type a question, or leave it out for an interactive session"]
    missing = ask("--adapter", str(adapters["missing"]), CHEST_PAIN)
    assert missing.returncode == 2 and missing.stdout == ""
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith(f"error: {adapters['missing']}: experts[bio].model: model file './no-such-model' does not exist; fix:"), line
    oracle = ask("--adapter", str(adapters["oracle"]), CHEST_PAIN)
    assert oracle.returncode == 2
    assert oracle.stderr.strip().splitlines() == [
        "error: tiny-oracle: the oracle router routes by the task's domain, not by the question; fix: pass --task <task name>"
    ]


def test_ensemble_generation_comes_from_the_highest_weight_expert(adapters, tiny_experts):
    """As a candidate (MedMoELM, what lm-eval calls) and in consultation: law weighs 3 of 4."""
    from lm_eval.api.instance import Instance

    from medmoe_lm_eval.harness.consult import Consultant
    from medmoe_lm_eval.harness.model import MedMoELM

    prompts = [f"Question: {CONTRACT}\nAnswer:", "Question: Which organ pumps blood?\nAnswer:"]
    requests = [
        Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": 10, "do_sample": False}), i, ("medmoe_lawse", i, 1))
        for i, p in enumerate(prompts)
    ]
    ensemble = MedMoELM(adapter=str(adapters["ensemble"]), profile="false")
    single = MedMoELM(adapter=str(adapters["law-alone"]), profile="false")
    assert ensemble.router.notes == ["router.weights summed to 4; normalised to 1"]
    assert ensemble.generate_until(requests) == single.generate_until(requests)
    assert ensemble.pool.load_counts == {"bio": 0, "law": 1}  # generation never needs the lighter expert

    consultant = Consultant(str(adapters["ensemble"]), max_new_tokens=10)
    decision = consultant.decide(CONTRACT)
    assert decision.gate == {"law": 0.75, "bio": 0.25} and decision.route.top == "law" and decision.role("bio") == "routed"
    *_, (_, answer) = consultant.answer(decision)
    assert answer.expert == "law" and answer.text == alone(tiny_experts["legal"], CONTRACT, 10)

    uniform = Consultant(str(adapters["uniform"]))
    tied = uniform.decide(CHEST_PAIN)
    assert tied.gate == {"law": 0.5, "bio": 0.5} and tied.route.top == "law"  # a tie goes to the first expert listed
    assert uniform.notes == []


def test_bundled_biomedical_ensemble_mixes_the_field_models_it_names():
    """Same model ids and precision as the two single-model candidates, so the board compares like with like."""
    from medmoe_lm_eval.harness.config import load_adapter
    from medmoe_lm_eval.harness.routing.router import Router

    cfg = load_adapter("biomedical-ensemble")
    assert cfg.kind == "moe" and cfg.router.type == "fixed"
    singles = [load_adapter(n).experts[0] for n in ("biomistral-7b", "llama3-openbiollm-8b")]
    assert sorted((e.model, e.dtype, e.domain) for e in cfg.experts) == sorted((e.model, e.dtype, e.domain) for e in singles)
    router = Router(cfg)
    assert router.notes == []  # the shipped weights already sum to one
    (route,) = router.route(["Which drug reverses warfarin?"], [None])
    assert sorted(route.experts) == sorted(e.name for e in cfg.experts) and sum(route.weights) == pytest.approx(1.0)
    assert route.top == cfg.experts[0].name  # equal weights: the first expert listed generates

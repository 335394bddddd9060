"""The leaderboard's Consult page, driven by ``AppTest`` over a folder of real tiny-model runs.

The folder holds real ``medmoe`` runs (``evaluate_candidate`` on the bundled PubMedQA sample):
a routed mixture (the shipped TF-IDF router, top-2, a shared generalist), a fixed-weight
ensemble, and a single expert whose model folder was deleted after its run. One more file is a
relabelled copy of the ensemble's run that names hub models (``"synthetic"`` in its
``config.medmoe``). Checks: browsing imports no torch and lists who cannot answer and why; a
question shows the gate weights (the router's probabilities renormalised by hand), the activated
experts, how a multi-domain question is shared, the answer (lm-eval's own generation of the top
expert alone), latency and notes; experts load once per process and only when needed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import board_ui
import consult_ui
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from medmoe_lm_eval.paths import bundled_adapters_dir, leaderboard_dir

APP = str(leaderboard_dir() / "app.py")
ROUTER = bundled_adapters_dir() / "routers" / "default_router.json"
SHARED_WEIGHT = 0.2
HUGE = "A patient with chest pain takes warfarin at a high dose and reports bleeding gums. " * 1250  # ~104 KB


@dataclass(frozen=True)
class ConsultBoard:
    root: Path
    experts: dict[str, Path]


def _expert(name: str, domain: str, path: Path) -> dict:
    return {"name": name, "domain": domain, "backend": "hf", "model": str(path), "device": "cpu"}


@pytest.fixture(scope="module")
def board(tmp_path_factory, tiny_experts, tiny_model_dir) -> ConsultBoard:
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    work = tmp_path_factory.mktemp("consult")
    gone = work / "deleted-code-model"
    shutil.copytree(tiny_experts["code"], gone)
    bio, law, code = (_expert(n, d, tiny_experts[d]) for n, d in (("bio", "biomedical"), ("law", "legal"), ("code", "code")))
    docs = {
        "tiny-routed": {"kind": "moe", "experts": [bio, law, code, _expert("general", "general", tiny_model_dir)], "router": {"type": "classifier", "path": str(ROUTER), "top_k": 2}, "shared_expert": {"name": "general", "weight": SHARED_WEIGHT}},
        "tiny-ensemble": {"kind": "moe", "experts": [bio, law], "router": {"type": "fixed", "weights": {"bio": 1, "law": 3}}},
        "tiny-gone": {"kind": "single", "experts": [_expert("code", "code", gone)]},
    }  # fmt: skip
    out = work / "results"
    for name, doc in docs.items():
        adapter = work / f"{name}.yaml"
        adapter.write_text(yaml.safe_dump({"name": name, **doc}, sort_keys=False), encoding="utf-8")
        evaluate_candidate(adapter, ["medmoe_pubmedqa"], out, name, limit=2, device="cpu")
    shutil.rmtree(gone)  # evaluated, then its files went away

    data = json.loads(next((out / "tiny-ensemble").glob("results_*.json")).read_text(encoding="utf-8"))
    hub = copy.deepcopy(data)
    medmoe = hub["config"]["medmoe"]
    medmoe.update(candidate="hub-ensemble-synthetic", synthetic="relabelled copy of tiny-ensemble's real run, naming hub models this machine does not have")
    for expert, model in zip(medmoe["adapter"]["experts"], ("aaditya/Llama3-OpenBioLLM-8B", "BioMistral/BioMistral-7B"), strict=True):
        expert["model"] = model
    (out / "synthetic-hub").mkdir()
    (out / "synthetic-hub" / "results_2026-03-01T00-00-00.000000.json").write_text(json.dumps(hub, indent=2), encoding="utf-8")
    consult_ui.live_consultant.clear()  # experts load once per process: start from none
    return ConsultBoard(out, tiny_experts)


def _app(monkeypatch, root: Path) -> AppTest:
    monkeypatch.setenv("MEDMOE_RESULTS", str(root))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/consult.py").run()
    _no_errors(at)
    return at


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _ask(at: AppTest, question: str | None = None, example: str | None = None, max_new_tokens: int = 8) -> AppTest:
    if example is not None:
        at.button(key=f"consult_example_{example}").click().run()
    if question is not None:
        at.text_area(key="consult_question").input(question)
    at.slider(key="consult_max_new_tokens").set_value(max_new_tokens)
    next(b for b in at.button if b.label == "Ask").click().run()
    _no_errors(at)
    return at


def _gate(at: AppTest) -> pd.DataFrame:
    (chart,) = at.get("vega_lite_chart")
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas().set_index("expert")


def _expected_gate(question: str) -> tuple[dict[str, float], dict[str, float]]:
    """Gate weights by hand: top-2 of the router's p(domain), renormalised, times 1 - shared."""
    from medmoe_lm_eval.harness.routing.scorers import load_scorer

    scorer = load_scorer(ROUTER)
    names = {"biomedical": "bio", "legal": "law", "code": "code"}
    probs = {names[d]: float(p) for d, p in zip(scorer.domains, scorer.predict_proba([question])[0])}
    (e1, p1), (e2, p2) = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
    gate = dict.fromkeys(names.values(), 0.0) | {"general": SHARED_WEIGHT, e1: (1 - SHARED_WEIGHT) * p1 / (p1 + p2), e2: (1 - SHARED_WEIGHT) * p2 / (p1 + p2)}
    return gate, probs


def _alone(model: Path, question: str, max_new_tokens: int) -> str:
    """The expert alone through lm-eval's own generation (no medmoe code, no streaming)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from medmoe_lm_eval.harness.consult import PROMPT, STOPS

    lm = HFLM(pretrained=str(model), device="cpu", batch_size=1)
    request = Instance("generate_until", {}, (PROMPT.format(question=question), {"until": STOPS, "max_gen_toks": max_new_tokens, "do_sample": False}), 0)
    return lm.generate_until([request], disable_tqdm=True)[0]


def _answer_markdown(text: str) -> str:
    # st.markdown stores its body dedented and stripped, so an answer's leading space is not shown
    return board_ui.md(text).replace("\n", "  \n").strip()


def _live(root: Path, name: str):
    """The page's cached consultant of ``name`` (the same object the page used)."""
    from medmoe_lm_eval.store.results import load_results

    results = load_results(root)
    (candidate,) = consult_ui.consult_candidates(results, [name])
    return consult_ui.live_consultant(candidate.key, candidate.adapter).consultant


def test_browsing_imports_no_torch_and_lists_who_cannot_answer(board, tmp_path):
    """In a fresh process with an empty hub cache: show the page, pick each candidate, pick an example."""
    code = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
at.switch_page("pages/consult.py").run()
box = at.selectbox(key="consult_candidate")
for option in box.options:
    at.selectbox(key="consult_candidate").set_value(option).run()
at.button(key="consult_example_Chest pain").click().run()
blocked = next(d.value for d in at.dataframe if "why not" in d.value.columns)
print(json.dumps({
    "errors": [e.value for e in at.exception] + [e.value for e in at.error], "options": box.options,
    "blocked": dict(zip(blocked["candidate"], blocked["why not"])), "question": at.text_area(key="consult_question").value,
    "warnings": [w.value for w in at.warning],
    "loaded": sorted(m for m in ("torch", "transformers", "lm_eval", "medmoe_lm_eval.harness.consult", "medmoe_lm_eval.harness.pool") if m in sys.modules),
}))
"""
    env = dict(os.environ, MEDMOE_RESULTS=str(board.root), HF_HUB_CACHE=str(tmp_path / "empty-hub-cache"), HF_HUB_OFFLINE="1")
    env.pop("MEDMOE_USE_CASES", None)
    out = subprocess.run([sys.executable, "-c", code, APP], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["errors"] == []
    assert seen["loaded"] == []  # browsing never builds a consultant nor loads a model
    assert seen["options"] == ["tiny-ensemble", "tiny-routed"]
    assert seen["blocked"] == {
        "hub-ensemble-synthetic": "expert 'bio': hub model 'aaditya/Llama3-OpenBioLLM-8B' is not in the local Hugging Face cache (the board never downloads); fetch it with `hf download aaditya/Llama3-OpenBioLLM-8B` and reload",
        "tiny-gone": f"expert 'code': model files '{board.root.parent / 'deleted-code-model'}' are missing on this machine",
    }
    assert seen["question"] == consult_ui.EXAMPLES["Chest pain"]
    assert any("not medical advice" in w for w in seen["warnings"])


def test_multi_domain_question_shows_weights_roles_sharing_and_the_answer(monkeypatch, board):
    at = _app(monkeypatch, board.root)
    at.selectbox(key="consult_candidate").set_value("tiny-routed").run()
    question = consult_ui.EXAMPLES["Drug interaction + liability"]
    _ask(at, example="Drug interaction + liability", max_new_tokens=12)

    gate, probs = _expected_gate(question)
    shown = _gate(at)
    assert shown["weight"].to_dict() == pytest.approx(gate, abs=1e-9)
    assert shown["router_prob"].drop("general").to_dict() == pytest.approx(probs, abs=1e-9)
    assert probs["bio"] > probs["law"] >= consult_ui.MULTI_DOMAIN_MIN  # the question spans two domains
    assert shown["role"].to_dict() == {"bio": "top", "law": "routed", "general": "shared", "code": "not activated"}
    activated = next(m.value for m in at.markdown if m.value.startswith("Activated:"))
    assert ":red-badge[top] **bio**" in activated and ":blue-badge[routed] **law**" in activated and ":violet-badge[shared] **general**" in activated
    assert "code" not in activated
    sharing = next(i.value for i in at.info if "Multi" in i.value)
    assert board_ui.md(f"between biomedical {probs['bio'] / (probs['bio'] + probs['law'] + probs['code']):.0%}, legal") in sharing
    assert board_ui.md("generated by the top expert, bio; law also weighs in when this candidate scores answer options") in sharing

    expected = _alone(board.experts["biomedical"], question, 12)
    assert expected.strip() and _answer_markdown(expected) in [m.value for m in at.markdown]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Routing"].endswith(" ms") and metrics["Expert load"].endswith(" s") and metrics["Generation"].endswith(" s")
    assert any(c.value == board_ui.md("Loaded in this app process: bio (1 load) (each expert loads once, when a question first needs it).") for c in at.caption)

    _ask(at, example="Chest pain")  # the same top expert: already loaded, not loaded again
    assert {m.label: m.value for m in at.metric}["Expert load"] == "already loaded"
    assert _live(board.root, "tiny-routed").pool.load_counts == {"bio": 1, "law": 0, "code": 0, "general": 0}

    at.run()  # a rerun without a question redraws the last answer without generating
    _no_errors(at)
    assert any(c.value.startswith("Last question") for c in at.caption) and len(at.get("vega_lite_chart")) == 1
    assert _live(board.root, "tiny-routed").pool.load_counts["bio"] == 1


def test_ensemble_weights_normalised_huge_question_truncated_empty_question_refused(monkeypatch, board):
    at = _app(monkeypatch, board.root)
    at.selectbox(key="consult_candidate").set_value("tiny-ensemble").run()
    _ask(at, question="   ")
    assert any(w.value.startswith("Type a question first") for w in at.warning) and not at.get("vega_lite_chart")

    _ask(at, question=HUGE)
    shown = _gate(at)
    assert shown["weight"].to_dict() == {"law": 0.75, "bio": 0.25}
    assert shown["role"].to_dict() == {"law": "top", "bio": "routed"} and shown["router_prob"].isna().all()
    infos = [i.value for i in at.info]
    assert board_ui.md("note: router.weights summed to 4; normalised to 1") in infos
    assert any(v.startswith(board_ui.md("Fixed ensemble: every expert weighs in")) for v in infos)
    warnings = [w.value for w in at.warning]
    assert any(board_ui.md("note: question truncated to its last 504 tokens: expert 'law' has a 512-token window") in w for w in warnings), warnings
    assert [s.value for s in at.subheader] == ["Router gate", "Answer from law"]


def test_plain_runs_are_listed_and_the_oracle_router_asks_for_a_task(monkeypatch, board_results):
    at = _app(monkeypatch, board_results.root)
    blocked = next(d.value for d in at.dataframe if "why not" in d.value.columns).set_index("candidate")["why not"]
    plain = {"model", board_results.project_candidate, "model-mystery"}
    assert set(blocked.index) == plain and all(r.startswith("plain `hf` run: no medmoe adapter recorded") for r in blocked)
    options = at.selectbox(key="consult_candidate").options
    assert set(options) == set(board_results.real_candidates) - plain | {"tiny-bio-gptq-synthetic"}

    at.selectbox(key="consult_candidate").set_value("moe-oracle").run()
    assert at.selectbox(key="consult_task").options == ["lbfx_bio", "lbfx_code", "lbfx_law"]
    at.selectbox(key="consult_task").set_value("lbfx_law").run()
    _ask(at, question="Which organ pumps blood through the body?")
    shown = _gate(at)
    assert shown.loc["leg", "weight"] == 1.0 and shown.loc["leg", "role"] == "top"  # the task's domain, not the text's
    assert [s.value for s in at.subheader] == ["Router gate", "Answer from leg"]

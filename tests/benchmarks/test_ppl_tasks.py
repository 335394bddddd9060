"""Domain perplexity tasks: lm-eval's rolling log-likelihood metrics over held-out bundled text."""

from __future__ import annotations

import math
import re

import lm_eval
import pytest
from lm_eval.tasks import TaskManager
from scripted_lm import ScriptedLM

from medmoe_lm_eval.benchmarks import domains, splits
from medmoe_lm_eval.paths import tasks_dir

PPL_TASKS = {f"medmoe_ppl_{d}": d for d in domains.DOMAINS}
METRICS = ("word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none")


def _manager() -> TaskManager:
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False)


def _expected_word_perplexity(domain: str, bits_per_byte: float) -> float:
    docs = [d["text"] for d in splits.ppl_docs(domain)]
    n_bytes = sum(len(t.encode("utf-8")) for t in docs)
    n_words = sum(len(re.split(r"\s+", t)) for t in docs)
    return math.exp(bits_per_byte * math.log(2) * n_bytes / n_words)


def test_ppl_docs_are_small_bounded_and_never_trained_on():
    for domain in domains.DOMAINS:
        docs = splits.ppl_docs(domain)
        train = set(splits.domain_texts(domain, "train"))
        heldout = splits.domain_texts(domain, "heldout")
        assert len(docs) == 40 and all(0 < len(d["text"]) <= 1000 for d in docs)
        assert all(any(h.startswith(d["text"]) for h in heldout) for d in docs)
        assert not any(t.startswith(d["text"]) for d in docs for t in train)
        assert splits.ppl_docs(domain) == docs  # deterministic


def test_ppl_tasks_carry_domain_and_group():
    loaded = _manager().load(["medmoe_ppl"])
    assert set(loaded["tasks"]) == set(PPL_TASKS)
    for name, domain in PPL_TASKS.items():
        task = loaded["tasks"][name]
        assert task.config.metadata["domain"] == domain
        assert task.OUTPUT_TYPE == "loglikelihood_rolling"


@pytest.mark.parametrize(("mode", "bits"), [("gold", 1.0), ("wrong", 2.0)])
def test_ppl_known_answer_scripted_lm(mode, bits):
    lm = ScriptedLM(_manager(), mode)
    results = lm_eval.simple_evaluate(model=lm, tasks=["medmoe_ppl"], task_manager=_manager(), bootstrap_iters=0)
    for name, domain in PPL_TASKS.items():
        got = results["results"][name]
        assert got["bits_per_byte,none"] == pytest.approx(bits)
        assert got["byte_perplexity,none"] == pytest.approx(2.0**bits)
        assert got["word_perplexity,none"] == pytest.approx(_expected_word_perplexity(domain, bits))
    assert results["results"]["medmoe_ppl"]["bits_per_byte,none"] == pytest.approx(bits)
    assert lm.calls["loglikelihood_rolling"] == 40 * len(PPL_TASKS)


@pytest.mark.slow
def test_ppl_tiny_hf_model_real_run(tiny_model_dir):
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir},device=cpu",
        tasks=["medmoe_ppl"],
        task_manager=_manager(),
        limit=8,
        bootstrap_iters=0,
    )
    for name in PPL_TASKS:
        values = [results["results"][name][m] for m in METRICS]
        assert all(math.isfinite(v) and v > 0 for v in values), (name, values)
        # a random model over a 1k-token vocabulary is far from the 1-bit-per-byte of fluent text
        assert results["results"][name]["bits_per_byte,none"] > 1.0


@pytest.mark.slow
def test_ppl_favours_the_expert_trained_on_its_domain(tiny_model_dir, tmp_path):
    """Briefly trained on ``train`` texts, the code model beats the legal one on held-out code and vice versa."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medmoe_lm_eval.testing.tiny import train_lm

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    experts = {}
    for domain in ("legal", "code"):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
        train_lm(model, tok, splits.domain_texts(domain, "train"), steps=20, batch_size=4, seq_len=64, lr=1e-2)
        model.save_pretrained(str(tmp_path / domain))
        tok.save_pretrained(str(tmp_path / domain))
        experts[domain] = tmp_path / domain

    def bpb(model_dir):
        tasks = ["medmoe_ppl_legal", "medmoe_ppl_code"]
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},device=cpu",
            tasks=tasks,
            task_manager=_manager(),
            limit=10,
            bootstrap_iters=0,
        )
        return {t.rsplit("_", 1)[1]: results["results"][t]["bits_per_byte,none"] for t in tasks}

    legal, code = bpb(experts["legal"]), bpb(experts["code"])
    assert code["code"] < legal["code"] and legal["legal"] < code["legal"], (legal, code)

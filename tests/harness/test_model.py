"""``medmoe`` through real lm-eval runs on tiny local models: parity with ``hf``, oracle routing,
mixture maths, residency, resumable caching, routing logs and failure modes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import lm_eval
import pytest
from commands import write_adapter
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from medmoe_lm_eval.harness.backends.base import BackendError

pytestmark = pytest.mark.slow

DOMAIN_TASK = {"biomedical": "medmoe_medmcqa", "legal": "medmoe_ppl_legal", "code": "medmoe_ppl_code"}


def single(folder: Path, model: Path, name: str = "single", **expert) -> Path:
    return write_adapter(folder, name, {"kind": "single", "experts": [{"name": "m", "model": str(model), "device": "cpu", **expert}]})


def experts_list(tiny_experts: dict[str, Path]) -> list[dict]:
    return [{"name": d[:3], "domain": d, "model": str(p), "device": "cpu"} for d, p in tiny_experts.items()]


def evaluate(model: str, model_args: dict, tasks: list[str], tm: TaskManager, limit: int = 6, **kw) -> dict:
    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=tasks, task_manager=tm, limit=limit, log_samples=True, batch_size=1, device="cpu", bootstrap_iters=0, **kw
    )


def responses(results: dict, task: str) -> list:
    return [s["resps"] for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])]


def metrics(results: dict, task: str) -> dict:
    return {k: v for k, v in results["results"][task].items() if k != "alias" and "stderr" not in k}


def flat_loglikelihoods(results: dict, task: str) -> list[float]:
    out: list[float] = []
    for resp in responses(results, task):
        for r in resp:
            value = r[0]
            out.append(float(value[0] if isinstance(value, (list, tuple)) else value))
    return out


def test_one_expert_matches_lm_eval_hf(tmp_path, tiny_model_dir, task_manager):
    tasks = ["medmoe_medmcqa", "medmoe_pubmedqa", "medmoe_ppl_biomedical", "medmoe_legal_ruleqa"]
    ours = evaluate("medmoe", {"adapter": str(single(tmp_path, tiny_model_dir))}, tasks, task_manager)
    ref = evaluate("hf", {"pretrained": str(tiny_model_dir)}, tasks, task_manager)
    for task in tasks:
        assert metrics(ours, task) == pytest.approx(metrics(ref, task), abs=1e-9), task
        if task == "medmoe_legal_ruleqa":
            assert responses(ours, task) == responses(ref, task)
        else:
            a, b = flat_loglikelihoods(ours, task), flat_loglikelihoods(ref, task)
            assert len(a) == len(b) > 0 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, task
    info = ours["config"]["medmoe"]
    assert info["label"] == "full" and info["expert_loads"] == {"m": 1}
    assert ours["config"]["medmoe_profile"]["total"]["requests"] > 0


def test_oracle_mixture_equals_each_expert_alone(tmp_path, tiny_experts, task_manager):
    adapter = write_adapter(tmp_path, "oracle", {"kind": "moe", "experts": experts_list(tiny_experts), "router": {"type": "oracle"}})
    tasks = list(DOMAIN_TASK.values())
    mixed = evaluate("medmoe", {"adapter": str(adapter), "log_dir": str(tmp_path / "logs")}, tasks, task_manager)
    for domain, task in DOMAIN_TASK.items():
        alone = evaluate("hf", {"pretrained": str(tiny_experts[domain])}, [task], task_manager)
        assert metrics(mixed, task) == pytest.approx(metrics(alone, task), abs=1e-9), task
    info = mixed["config"]["medmoe"]
    assert info["expert_loads"] == {"bio": 1, "leg": 1, "cod": 1}
    per_task = info["routing"]["per_task"]
    assert {t: per_task[t]["share"] for t in tasks} == {
        DOMAIN_TASK["biomedical"]: {"bio": 1.0},
        DOMAIN_TASK["legal"]: {"leg": 1.0},
        DOMAIN_TASK["code"]: {"cod": 1.0},
    }
    assert all(per_task[t]["agreement"] == 1.0 for t in tasks)
    rows = [json.loads(line) for line in (tmp_path / "logs" / info["routing"]["log_file"]).read_text().splitlines()]
    assert {r["task"] for r in rows} == set(tasks) and all(r["experts"] == [r["routed_domain"][:3]] for r in rows)
    assert (tmp_path / "logs" / info["profile_file"]).is_file()


def test_residency_limit_loads_each_expert_once_per_request_type(tmp_path, tiny_experts, task_manager):
    adapter = write_adapter(
        tmp_path, "limited", {"kind": "moe", "experts": experts_list(tiny_experts), "router": {"type": "oracle"}, "memory": {"max_resident": 1}}
    )
    tasks = [DOMAIN_TASK["legal"], DOMAIN_TASK["code"]]  # one request type: rolling loglikelihood
    out = evaluate("medmoe", {"adapter": str(adapter)}, tasks, task_manager, limit=3)
    assert out["config"]["medmoe"]["expert_loads"] == {"bio": 0, "leg": 1, "cod": 1}


def test_one_model_serving_two_domains_is_loaded_once(tmp_path, tiny_experts, task_manager):
    # the real demo's shape: one model answers biomedical and legal, another code. The two entries
    # over one folder share a load (the mixture's memory is one copy's), and answer exactly as two
    # separately loaded copies of the folder do; an entry with other settings still loads apart.
    bio = str(tiny_experts["biomedical"])
    twins = [{"name": n, "domain": d, "model": bio, "device": "cpu"} for n, d in (("m-bio", "biomedical"), ("m-law", "legal"))]
    code = {"name": "cod", "domain": "code", "model": str(tiny_experts["code"]), "device": "cpu"}
    shared = write_adapter(tmp_path, "shared", {"kind": "moe", "experts": [*twins, code], "router": {"type": "oracle"}})
    tasks = [DOMAIN_TASK["biomedical"], DOMAIN_TASK["legal"], DOMAIN_TASK["code"]]
    out = evaluate("medmoe", {"adapter": str(shared)}, tasks, task_manager, limit=3)
    assert out["config"]["medmoe"]["expert_loads"] == {"m-bio": 1, "m-law": 0, "cod": 1}
    copy = tmp_path / "copy"
    shutil.copytree(bio, copy)  # another path: a separate load of the same weights
    apart = [twins[0], {**twins[1], "model": str(copy)}, code]
    separate = write_adapter(tmp_path, "separate", {"kind": "moe", "experts": apart, "router": {"type": "oracle"}})
    again = evaluate("medmoe", {"adapter": str(separate)}, tasks, task_manager, limit=3)
    assert again["config"]["medmoe"]["expert_loads"] == {"m-bio": 1, "m-law": 1, "cod": 1}
    for task in tasks:
        assert flat_loglikelihoods(out, task) == flat_loglikelihoods(again, task), task
    other = write_adapter(tmp_path, "other", {"kind": "moe", "experts": [twins[0], {**twins[1], "max_length": 64}, code], "router": {"type": "oracle"}})
    assert evaluate("medmoe", {"adapter": str(other)}, tasks, task_manager, limit=1)["config"]["medmoe"]["expert_loads"]["m-law"] == 1


def test_uniform_ensemble_is_the_probability_mixture(tmp_path, tiny_experts, task_manager):
    """Checked per request against the two experts run alone and mixed by hand."""
    two = {d: p for d, p in tiny_experts.items() if d != "code"}
    ens = write_adapter(tmp_path, "ens", {"kind": "moe", "experts": experts_list(two), "router": {"type": "fixed", "weights": {"bio": 3, "leg": 1}}})
    task = "medmoe_medmcqa"
    mixed = flat_loglikelihoods(evaluate("medmoe", {"adapter": str(ens)}, [task], task_manager, limit=3), task)
    bio = flat_loglikelihoods(evaluate("hf", {"pretrained": str(two["biomedical"])}, [task], task_manager, limit=3), task)
    leg = flat_loglikelihoods(evaluate("hf", {"pretrained": str(two["legal"])}, [task], task_manager, limit=3), task)
    by_hand = [math.log(0.75 * math.exp(a) + 0.25 * math.exp(b)) for a, b in zip(bio, leg)]
    assert mixed == pytest.approx(by_hand, abs=1e-5)


def test_use_cache_resumes_without_calling_models_again(tmp_path, tiny_model_dir, task_manager):
    adapter = str(single(tmp_path, tiny_model_dir))
    cache = str(tmp_path / "cache" / "run")
    first = evaluate("medmoe", {"adapter": adapter}, ["medmoe_medmcqa"], task_manager, limit=2, use_cache=cache)
    assert first["config"]["medmoe_profile"]["total"]["requests"] == 8
    second = evaluate("medmoe", {"adapter": adapter}, ["medmoe_medmcqa"], task_manager, limit=4, use_cache=cache)
    assert second["config"]["medmoe_profile"]["total"]["requests"] == 8  # only the two new documents
    third = evaluate("medmoe", {"adapter": adapter}, ["medmoe_medmcqa"], task_manager, limit=4, use_cache=cache)
    assert third["config"]["medmoe_profile"]["total"]["requests"] == 0
    assert metrics(third, "medmoe_medmcqa") == metrics(second, "medmoe_medmcqa")


def test_expert_that_fails_to_load_is_named(tmp_path, tiny_model_dir):
    from medmoe_lm_eval.harness.model import MedMoELM

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    lm = MedMoELM(adapter=str(single(tmp_path, broken, name="broken")))
    assert lm.loglikelihood([]) == []  # an empty request list loads nothing
    request = Instance("loglikelihood", {}, ("Question: x\nAnswer:", " A"), 0, ("medmoe_medmcqa", 0, 1))
    with pytest.raises(BackendError, match="expert 'm'.*could not load"):
        lm.loglikelihood([request])


def test_out_of_memory_names_the_expert_and_suggests_fixes_injected(tmp_path, tiny_model_dir):
    """An expert raising out-of-memory mid-run (injected: no GPU here to exhaust)."""
    from medmoe_lm_eval.harness.model import MedMoELM

    lm = MedMoELM(adapter=str(single(tmp_path, tiny_model_dir)))
    backend = lm.pool.get("m")

    def boom(requests):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    backend.loglikelihood = boom
    request = Instance("loglikelihood", {}, ("Question: x\nAnswer:", " A"), 0, ("medmoe_medmcqa", 0, 1))
    with pytest.raises(BackendError, match="expert 'm' ran out of memory.*batch_size.*max_resident"):
        lm.loglikelihood([request])


def test_unknown_model_argument_is_a_config_error(tmp_path, tiny_model_dir):
    from medmoe_lm_eval.harness.config import ConfigError
    from medmoe_lm_eval.harness.model import MedMoELM

    with pytest.raises(ConfigError, match="pretrained: unknown model argument"):
        MedMoELM(adapter=str(single(tmp_path, tiny_model_dir)), pretrained="x")


def test_generation_longer_than_the_window_is_a_clear_error(tmp_path, tiny_model_dir):
    from medmoe_lm_eval.harness.model import MedMoELM

    lm = MedMoELM(adapter=str(single(tmp_path, tiny_model_dir)))
    request = Instance("generate_until", {}, ("Question: x\nAnswer:", {"until": ["\n"], "max_gen_toks": 512}), 0, ("medmoe_medquad", 0, 1))
    with pytest.raises(BackendError, match="asks for up to 512 new tokens but the expert's window is 512 tokens; fix: pass --gen_kwargs"):
        lm.generate_until([request])

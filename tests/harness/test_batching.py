"""The command line's batch size reaches every backend as that backend's notion of a batch.

``hf`` experts get it as ``HFLM``'s batch size (``auto`` detection included) and must score
like ``lm_eval --model hf`` at the same batch size; a remote expert gets it as its concurrency
(checked on a scripted server that counts requests in flight, injected); the effective batch of
each expert is in the profile. Parsing follows lm-eval's CLI: no ``--batch_size`` arrives as the
integer 1 and leaves the adapter's value.
"""

from __future__ import annotations

import time
from pathlib import Path

import lm_eval
import pytest
import yaml
from lm_eval.api.instance import Instance
from scripted_server import MODELS, echo_body, scripted_server

from medmoe_lm_eval._lmeval_hook import register
from medmoe_lm_eval.demo.runs import task_manager
from medmoe_lm_eval.harness.batching import BatchSetting, for_expert, from_cli
from medmoe_lm_eval.harness.config import ConfigError, HFExpert, RemoteExpert
from medmoe_lm_eval.harness.model import MedMoELM

TASKS = ["medmoe_medmcqa", "medmoe_ppl_biomedical"]


def test_cli_batch_size_follows_lm_evals_conventions():
    assert from_cli(None) is None and from_cli(1) is None  # not given: lm-eval's CLI default is the integer 1
    assert from_cli("1") == BatchSetting(1, source="cli")  # an explicit --batch_size 1 arrives as a string
    assert from_cli("16", "32") == BatchSetting(16, 1, 32, "cli")
    assert from_cli("auto") == BatchSetting("auto", 1, None, "cli") and from_cli("auto:4").lm_eval_value == "auto:4"
    for bad in ("0", "x", "auto:0"):
        with pytest.raises(ConfigError, match=r"--batch_size: batch_size: .* fix: pass an integer >= 1"):
            from_cli(bad)
    with pytest.raises(ConfigError, match="--max_batch_size"):
        from_cli("auto", "-2")


def test_each_backend_reads_the_batch_its_own_way():
    hf = HFExpert(name="h", model="m", batch_size=2)
    remote = RemoteExpert(name="r", backend="remote", model="m", base_url="http://127.0.0.1:1", concurrency=4)
    assert for_expert(hf, None) == BatchSetting(2) and for_expert(hf, from_cli("8")).size == 8
    assert for_expert(remote, None).size == 4  # the adapter's concurrency
    assert for_expert(remote, from_cli("8")).size == 8 and for_expert(remote, from_cli("auto")).size == 4
    assert for_expert(remote, from_cli("auto", "3")).size == 3


def _single(folder: Path, model: Path) -> str:
    path = folder / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "one", "kind": "single", "experts": [{"name": "m", "model": str(model), "device": "cpu"}]}))
    return str(path)


def _loglikelihoods(results: dict, task: str) -> list[float]:
    out = []
    for sample in sorted(results["samples"][task], key=lambda s: s["doc_id"]):
        for resp in sample["resps"]:
            value = resp[0]
            out.append(float(value[0] if isinstance(value, list | tuple) else value))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("batch_size", "max_batch_size", "effective"), [("4", None, 4), ("auto", 8, 8)])
def test_hf_expert_batches_like_lm_eval_hf(tmp_path, tiny_model_dir, batch_size, max_batch_size, effective):
    register()

    def run(model: str, args: dict) -> dict:
        return lm_eval.simple_evaluate(
            model=model, model_args=args, tasks=TASKS, task_manager=task_manager(), limit=5, log_samples=True,
            batch_size=batch_size, max_batch_size=max_batch_size, device="cpu", bootstrap_iters=0,
        )  # fmt: skip

    ours = run("medmoe", {"adapter": _single(tmp_path, tiny_model_dir)})
    ref = run("hf", {"pretrained": str(tiny_model_dir)})
    for task in TASKS:
        a, b = _loglikelihoods(ours, task), _loglikelihoods(ref, task)
        assert len(a) == len(b) > 0 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, task
    batch = ours["config"]["medmoe_profile"]["experts"]["m"]["batch"]
    assert batch["requested"] == batch_size and batch["source"] == "cli" and batch["unit"] == "sequences per forward pass"
    assert batch["effective"] == {"loglikelihood": effective, "loglikelihood_rolling": effective}


def test_cli_batch_size_is_a_remote_experts_concurrency_injected(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    def respond(handler, body):
        if handler.path == "/v1/models":
            return 200, MODELS
        time.sleep(0.1)
        return 200, echo_body(len(tok(body["prompt"])["input_ids"]))

    expert = {"name": "r", "backend": "remote", "model": "tiny", "tokenizer": str(tiny_model_dir), "max_length": 256, "concurrency": 2, "max_retries": 0}
    reqs = [Instance("loglikelihood", {}, (f"The patient presented with case {i}", " fever"), i, ("medmoe_medmcqa", i, 1)) for i in range(9)]
    seen = {}
    for batch_size in (None, "3"):
        with scripted_server(respond) as (url, state):
            path = tmp_path / "remote.yaml"
            path.write_text(yaml.safe_dump({"name": "remote", "kind": "single", "experts": [{**expert, "base_url": url}]}))
            lm = MedMoELM(adapter=str(path), device="cpu", batch_size=batch_size)
            try:
                lm.loglikelihood(reqs, disable_tqdm=True)
                seen[batch_size] = (state["max_in_flight"], lm.get_model_info()["medmoe_profile"]["experts"]["r"]["batch"])
            finally:
                lm.close()
    assert seen[None][0] == 2 and seen[None][1]["effective"] == {"loglikelihood": 2} and seen[None][1]["source"] == "adapter"
    assert seen["3"][0] == 3 and seen["3"][1]["effective"] == {"loglikelihood": 3} and seen["3"][1]["unit"] == "requests in flight"

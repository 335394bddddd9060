"""``medmoe quantize`` on a tiny Llama: GPTQ/AWQ (gptqmodel, CPU) and GGUF q8_0/q4_0 (llama.cpp).

Each quantized candidate is made by the CLI, loaded through the adapter it writes and run on
bundled tasks by lm-eval; its figures must land near the fp32 model's. Tolerances (measured on
this model: q8_0 and 4-bit copies move per-request loglikelihoods by at most 0.3 % and
bits-per-byte by under 0.001): q8_0 within 1 % per request and 0.01 bits/byte; 4-bit within 3 %
per request, 0.05 bits/byte and one answer in four. Each copy must also differ from fp32, so a
run that silently loaded the full model would fail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from medmoe_lm_eval.cli.quantize import add_arguments as add_quantize_arguments
from medmoe_lm_eval.cli.quantize import run as run_quantize
from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.backends.quant_info import check_quantized_loadable, quantization_info

TASKS = ["medmoe_medmcqa", "medmoe_ppl_biomedical"]
LIMIT = 4
TOLERANCE = {"q8": (0.01, 0.01, 0.0), "4bit": (0.03, 0.05, 0.25)}  # per-request rel., bits/byte abs., acc abs.


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_quantize_arguments(parser)
    return run_quantize(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def task_manager():
    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager as project_task_manager

    register()
    return project_task_manager()


def evaluate(adapter: Path, tm) -> tuple[dict, list[float]]:
    import lm_eval

    out = lm_eval.simple_evaluate(
        model="medmoe",
        model_args={"adapter": str(adapter)},
        tasks=TASKS,
        task_manager=tm,
        limit=LIMIT,
        log_samples=True,
        batch_size=1,
        device="cpu",
        bootstrap_iters=0,
    )
    samples = sorted(out["samples"]["medmoe_medmcqa"], key=lambda s: s["doc_id"])
    return out["results"], [float(r[0][0]) for s in samples for r in s["resps"]]


@pytest.fixture(scope="module")
def fp32_figures(trained, task_manager, tmp_path_factory):
    path = tmp_path_factory.mktemp("fp32") / "adapter.yaml"
    path.write_text(
        yaml.safe_dump({"name": "fp32", "kind": "single", "experts": [{"name": "fp32", "model": str(trained), "dtype": "float32", "device": "cpu"}]})
    )
    return evaluate(path, task_manager)


def assert_close(figures, reference, kind: str) -> None:
    (results, lls), (ref_results, ref_lls) = figures, reference
    rel, bpb, acc = TOLERANCE[kind]
    assert len(lls) == len(ref_lls) > 0
    diffs = [abs(a - b) for a, b in zip(lls, ref_lls)]
    assert max(d / abs(b) for d, b in zip(diffs, ref_lls)) <= rel
    assert max(diffs) > 0, "the quantized copy scored exactly like fp32: was it really loaded?"
    key = "bits_per_byte,none"
    assert abs(results["medmoe_ppl_biomedical"][key] - ref_results["medmoe_ppl_biomedical"][key]) <= bpb
    assert abs(results["medmoe_medmcqa"]["acc,none"] - ref_results["medmoe_medmcqa"]["acc,none"]) <= acc


@pytest.mark.quant
@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_gptq_awq_made_loaded_and_close_to_fp32(method, trained, tmp_path, task_manager, fp32_figures, tiny_texts):
    pytest.importorskip("gptqmodel")
    cal = tmp_path / "cal.jsonl"
    cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in tiny_texts[:12]) + json.dumps({"text": "word " * 400}) + "\n")
    out = tmp_path / method
    assert (
        cli("--model", str(trained), "--method", method, "--calibration", str(cal), "--n-samples", "13", "--calibration-length", "64", "--out", str(out)) == 0
    )
    info = quantization_info(out)
    assert info is not None and (info["method"], info["bits"], info["group_size"]) == (method, 4, 64)
    check_quantized_loadable(out, "cpu")
    adapter = yaml.safe_load((out / "adapter.yaml").read_text())
    assert adapter["experts"][0] | {"name": None} == {"name": None, "domain": "general", "backend": "hf", "model": ".", "dtype": "float32"}
    figures = evaluate(out / "adapter.yaml", task_manager)
    assert_close(figures, fp32_figures, "4bit")


@pytest.mark.gguf
@pytest.mark.slow
@pytest.mark.parametrize("method, kind, ftype", [("gguf-q8_0", "q8", "Q8_0"), ("gguf-q4_0", "4bit", "Q4_0"), ("gguf-q4_k_m", "4bit", "Q4_K_M")])
def test_gguf_quantized_close_to_fp32(method, kind, ftype, trained, tmp_path, task_manager, fp32_figures):
    pytest.importorskip("llama_cpp")
    out = tmp_path / method
    assert cli("--model", str(trained), "--method", method, "--out", str(out)) == 0
    adapter = yaml.safe_load((out / "adapter.yaml").read_text())
    gguf_file = out / adapter["experts"][0]["model"]
    assert quantization_info(gguf_file)["type"] == ftype and not list(out.glob("*.tmp.gguf"))
    figures = evaluate(out / "adapter.yaml", task_manager)
    assert_close(figures, fp32_figures, kind)


def test_calibration_truncates_long_texts_instead_of_dropping(trained):
    from transformers import AutoTokenizer

    from medmoe_lm_eval.quantization.calibration_texts import tokenize

    tok = AutoTokenizer.from_pretrained(str(trained))
    cal = tokenize(["short one", "long " * 300, "   ", "another fine text"], tok, n_samples=10, seq_len=32, source="t")
    assert [len(r["input_ids"]) for r in cal.rows][1] == 32
    assert (len(cal.rows), cal.truncated, cal.skipped_empty) == (3, 1, 1)
    assert "1 truncated" in cal.summary()


def test_calibration_bad_jsonl_names_file_row_and_field(tmp_path):
    from medmoe_lm_eval.quantization.calibration_texts import load_texts

    bad = tmp_path / "cal.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(BackendError, match=r"cal.jsonl: row 2: field 'text' is missing"):
        load_texts(str(bad))
    with pytest.raises(BackendError, match="neither a JSONL file nor a bundled domain"):
        load_texts("no-such-domain")
    texts, source = load_texts("biomedical")
    assert len(texts) > 10 and "train" in source


@pytest.mark.parametrize(
    "qc, field",
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}, "format='marlin'"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv_fast"}, "format='gemv_fast'"),
        ({"quant_method": "fp8"}, "quant_method='fp8'"),
    ],
)
def test_gpu_only_checkpoint_refused_on_cpu_host(tmp_path, qc, field):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "quantization_config": qc}))
    with pytest.raises(BackendError) as err:
        check_quantized_loadable(tmp_path, "cpu")
    message = str(err.value)
    assert "config.json: quantization_config." + field in message and "needs a CUDA GPU" in message and "fix:" in message
    assert "\n" not in message


def test_quantization_info_reads_config_without_loading(tmp_path, trained):
    assert quantization_info(trained) is None
    assert quantization_info("org/some-hub-model") is None
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}}))
    assert quantization_info(tmp_path) == {"method": "awq", "bits": 4, "group_size": 128, "type": "gemm"}


def test_cli_errors_are_one_line(tmp_path, trained, capsys):
    assert cli("--model", str(tmp_path), "--method", "gguf-q8_0", "--out", str(tmp_path / "o")) == 2
    assert cli("--model", str(trained), "--method", "gptq", "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "has no config.json" in err[0] and "--calibration is required" in err[1]


def test_converter_refuses_tokenizer_it_cannot_reproduce(tmp_path, trained, monkeypatch):
    monkeypatch.delenv("MEDMOE_GGUF_CONVERTER", raising=False)
    import shutil

    from medmoe_lm_eval.quantization.gguf_convert import ConversionError, hf_to_gguf

    model = shutil.copytree(trained, tmp_path / "m")
    tj = json.loads((model / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Whitespace"}
    (model / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(ConversionError, match="unknown BPE pre-tokenizer"):
        hf_to_gguf(model, tmp_path / "x.gguf", "f32")
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, "architectures": ["Phi3ForCausalLM"]}))
    with pytest.raises(ConversionError, match="MEDMOE_GGUF_CONVERTER"):
        hf_to_gguf(model, tmp_path / "x.gguf", "f32")

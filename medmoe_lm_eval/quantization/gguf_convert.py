"""Hugging Face checkpoint -> GGUF file, then llama.cpp's own quantizer.

llama.cpp's ``convert_hf_to_gguf.py`` lives in its source tree, which neither the
``llama-cpp-python`` wheel nor the ``gguf`` package installs, and it refuses any byte-level BPE
tokenizer whose pre-tokenizer hash it does not know (every tokenizer trained locally). So the
Llama family (``LlamaForCausalLM``, ``MistralForCausalLM``: the architecture llama.cpp calls
``llama``) is written here with ``gguf``'s own writer, vocabulary readers and tensor-name map; the
pre-tokenizer is named from what ``tokenizer.json`` declares (its split regex), not from a hash,
so the GGUF tokenizes exactly like the HF tokenizer. Other architectures go through llama.cpp's
converter when the user points ``MEDMOE_GGUF_CONVERTER`` at a checkout's ``convert_hf_to_gguf.py``.

Quantization (q8_0, q4_0, q4_k_m, ...) is ``llama_model_quantize`` from llama.cpp's C API,
reached through llama-cpp-python, so no separate llama.cpp binary is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medmoe_lm_eval import settings

#: outtype -> (llama ftype for the converter, GGUF file type number)
OUTTYPES = {"f32": 0, "f16": 1}

#: method suffix -> llama.cpp ``llama_ftype`` value (``LLAMA_FTYPE_*``)
QUANT_FTYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15}

_LLAMA_ARCHS = ("LlamaForCausalLM", "MistralForCausalLM")

#: split regexes of byte-level BPE tokenizers -> llama.cpp pre-tokenizer names
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_KNOWN_SPLITS = {_LLAMA3_REGEX: "llama-bpe"}


class ConversionError(RuntimeError):
    """The checkpoint cannot be converted here; the message says why and what to do."""


ProgressFn = Callable[[str, int, int], None]


def _noop(_stage: str, _done: int, _total: int) -> None:
    return None


# -- tokenizer -------------------------------------------------------------------------------


def bpe_pre_tokenizer(tokenizer_json: dict[str, Any], where: str) -> str:
    """The llama.cpp pre-tokenizer that splits text exactly as this ``tokenizer.json`` does."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if tokenizer_json.get("normalizer"):
        raise ConversionError(
            f"{where}: tokenizer.json has a normalizer, which llama.cpp's BPE vocab does not apply; convert with llama.cpp's converter ({settings.GGUF_CONVERTER.name})"
        )
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space") or not pre.get("use_regex", True):
            raise ConversionError(
                f"{where}: ByteLevel pre-tokenizer with add_prefix_space/no regex has no llama.cpp equivalent; convert with llama.cpp's converter ({settings.GGUF_CONVERTER.name})"
            )
        return "gpt-2"  # GPT-2's regex, which ByteLevel(use_regex=True) applies
    if pre.get("type") == "Sequence":
        splits = [p for p in pre.get("pretokenizers", []) if p.get("type") == "Split"]
        if len(splits) == 1:
            regex = splits[0].get("pattern", {}).get("Regex")
            if regex in _KNOWN_SPLITS:
                return _KNOWN_SPLITS[regex]
    raise ConversionError(
        f"{where}: unknown BPE pre-tokenizer {json.dumps(pre)[:120]}; convert with llama.cpp's converter (set {settings.GGUF_CONVERTER.name} to its convert_hf_to_gguf.py)"
    )


def _add_bpe_vocab(writer: Any, model_dir: Path, tokenizer_json: dict[str, Any]) -> None:
    import gguf

    vocab = gguf.BpeVocab(model_dir)
    special = {t["content"] for t in tokenizer_json.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for raw, _score, ttype in vocab.all_tokens():
        tokens.append(raw if isinstance(raw, str) else raw.decode("utf-8"))
        types.append(gguf.TokenType.CONTROL if tokens[-1] in special else ttype)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(bpe_pre_tokenizer(tokenizer_json, str(model_dir)))
    writer.add_token_list(tokens)
    writer.add_token_types(types)


def _add_spm_vocab(writer: Any, model_dir: Path) -> None:
    import gguf

    vocab = gguf.SentencePieceVocab(model_dir) if (model_dir / "tokenizer.model").is_file() else gguf.LlamaHfVocab(model_dir)
    tokens, scores, types = zip(*vocab.all_tokens())
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(list(tokens))
    writer.add_token_scores(list(scores))
    writer.add_token_types(list(types))


def add_vocab(writer: Any, model_dir: Path) -> int:
    """Write the tokenizer (and its special tokens, BOS policy, merges); returns its size."""
    import gguf

    tj_path = model_dir / "tokenizer.json"
    tokenizer_json = json.loads(tj_path.read_text(encoding="utf-8")) if tj_path.is_file() else {}
    model = tokenizer_json.get("model", {})
    is_byte_bpe = model.get("type") == "BPE" and not model.get("byte_fallback") and (tokenizer_json.get("decoder") or {}).get("type") == "ByteLevel"
    if is_byte_bpe:
        _add_bpe_vocab(writer, model_dir, tokenizer_json)
    elif (model_dir / "tokenizer.model").is_file() or model.get("byte_fallback"):
        _add_spm_vocab(writer, model_dir)
    else:
        raise ConversionError(
            f"{model_dir}: no tokenizer.json (byte-level BPE) or tokenizer.model (SentencePiece) found; save the tokenizer next to the weights"
        )
    special = gguf.SpecialVocab(model_dir, load_merges=is_byte_bpe)
    special.add_to_gguf(writer, quiet=True)
    n_vocab = len(tokenizer_json.get("model", {}).get("vocab", {})) if is_byte_bpe else 0
    return n_vocab


# -- tensors ---------------------------------------------------------------------------------


def _checkpoint_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{model_dir}: no *.safetensors weights; re-save the model with save_pretrained(safe_serialization=True)")
    return files


def _iter_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array), one tensor at a time, so a 7B model never sits in RAM whole."""
    import torch
    from safetensors import safe_open

    for file in _checkpoint_files(model_dir):
        with safe_open(str(file), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                yield name, fh.get_tensor(name).to(torch.float32).numpy()


def _rope_permute(weight: Any, n_head: int) -> Any:
    """HF stores q/k for rotate-half RoPE; llama.cpp's ``llama`` arch rotates adjacent pairs."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _convert_tensor(name: str, data: Any, cfg: dict[str, Any], outtype: str) -> Any:
    import numpy as np

    n_head = cfg["num_attention_heads"]
    if name.endswith("q_proj.weight"):
        data = _rope_permute(data, n_head)
    elif name.endswith("k_proj.weight"):
        data = _rope_permute(data, cfg.get("num_key_value_heads") or n_head)
    if outtype == "f16" and data.ndim >= 2:
        return data.astype(np.float16)
    return data.astype(np.float32)


# -- metadata --------------------------------------------------------------------------------


def _rope_theta(cfg: dict[str, Any]) -> float:
    params = cfg.get("rope_parameters") or {}
    return float(params.get("rope_theta") or cfg.get("rope_theta") or 10000.0)


def _check_llama_config(cfg: dict[str, Any], where: str) -> None:
    scaling = cfg.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type") or scaling.get("type") or (cfg.get("rope_parameters") or {}).get("rope_type", "default")
    if rope_type not in (None, "default"):
        raise ConversionError(
            f"{where}: rope scaling '{rope_type}' is not written by the built-in converter; convert with llama.cpp's converter ({settings.GGUF_CONVERTER.name})"
        )
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise ConversionError(
            f"{where}: attention/MLP biases are not written by the built-in converter; convert with llama.cpp's converter ({settings.GGUF_CONVERTER.name})"
        )


def _add_llama_hparams(writer: Any, cfg: dict[str, Any], name: str, outtype: str) -> None:
    import gguf

    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    writer.add_name(name)
    writer.add_context_length(int(cfg.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(cfg["hidden_size"]))
    writer.add_block_count(int(cfg["num_hidden_layers"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_head_count(int(n_head))
    writer.add_head_count_kv(int(cfg.get("num_key_value_heads") or n_head))
    writer.add_rope_dimension_count(int(head_dim))
    writer.add_key_length(int(head_dim))
    writer.add_value_length(int(head_dim))
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    writer.add_vocab_size(int(cfg["vocab_size"]))
    writer.add_file_type(OUTTYPES[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_llama(model_dir: Path, out: Path, cfg: dict[str, Any], outtype: str, progress: ProgressFn) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(out), "llama", use_temp_file=True)
    try:
        _add_llama_hparams(writer, cfg, model_dir.name, outtype)
        add_vocab(writer, model_dir)
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(cfg["num_hidden_layers"]))
        expected = 2 + 9 * int(cfg["num_hidden_layers"]) + (0 if cfg.get("tie_word_embeddings") else 1)
        done = 0
        for hf_name, data in _iter_tensors(model_dir):
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ConversionError(
                    f"{model_dir}: tensor '{hf_name}' has no llama.cpp name; convert with llama.cpp's converter ({settings.GGUF_CONVERTER.name})"
                )
            writer.add_tensor(gguf_name, _convert_tensor(hf_name, data, cfg, outtype))
            done += 1
            progress("convert", done, expected)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()
    return out


def _external_converter(model_dir: Path, out: Path, outtype: str) -> Path:
    script = settings.GGUF_CONVERTER.value()
    arch = json.loads((model_dir / "config.json").read_text()).get("architectures", ["?"])[0]
    if not script or not Path(script).is_file():
        raise ConversionError(
            f"{model_dir}: architecture '{arch}' is not handled by the built-in GGUF writer (Llama/Mistral); "
            f"set {settings.GGUF_CONVERTER.name} to llama.cpp's convert_hf_to_gguf.py (same llama.cpp version as llama-cpp-python)"
        )
    cmd = [sys.executable, script, str(model_dir), "--outfile", str(out), "--outtype", outtype]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConversionError(f"{model_dir}: llama.cpp converter failed: {last[0]}")
    return out


def hf_to_gguf(model_dir: str | Path, out: str | Path, outtype: str = "f16", progress: ProgressFn = _noop) -> Path:
    """Write ``model_dir`` (a saved HF causal LM) as an unquantized GGUF file (``f32``/``f16``)."""
    model_dir, out = Path(model_dir), Path(out)
    if outtype not in OUTTYPES:
        raise ConversionError(f"outtype '{outtype}' is not one of {sorted(OUTTYPES)}")
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ConversionError(f"{model_dir}: no config.json; pass a folder written by save_pretrained")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not any(a in _LLAMA_ARCHS for a in cfg.get("architectures") or []):
        return _external_converter(model_dir, out, outtype)
    _check_llama_config(cfg, str(model_dir))
    return _write_llama(model_dir, out, cfg, outtype, progress)


def quantize_gguf(src: str | Path, dst: str | Path, qtype: str, n_threads: int | None = None) -> Path:
    """Quantize a f32/f16 GGUF file with llama.cpp's ``llama_model_quantize``."""
    import ctypes

    import llama_cpp

    if qtype not in QUANT_FTYPES:
        raise ConversionError(f"GGUF type '{qtype}' is not one of {sorted(QUANT_FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[qtype]
    params.nthread = n_threads or (os.cpu_count() or 1)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise ConversionError(f"{src}: llama.cpp quantizer returned {rc} for type {qtype} (see its log above)")
    return Path(dst)

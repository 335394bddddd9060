"""The GGUF header reader against files written byte by byte, and against gguf's own reader.

The backend reads a file's header before llama.cpp loads it (one-line errors for a bad file);
``gguf.GGUFReader`` took 13.3 s on Gemma 3's 262k-token vocabulary, this reader 0.12 s. It must
see the same metadata and refuse a file cut short or claiming more than it holds.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from medmoe_lm_eval.harness.backends.gguf_header import HeaderError, read_header


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _file(tmp_path: Path, *, tokens: int = 3, data: int = 64, n_tensors: int = 1, array_count: int | None = None) -> Path:
    """A GGUF v3 file: a name, an alignment, a string array of ``tokens`` entries, one f32 tensor of 4x4."""
    kv = _str("general.name") + struct.pack("<I", 8) + _str("tiny")
    kv += _str("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    kv += _str("tokenizer.ggml.tokens") + struct.pack("<I", 9) + struct.pack("<IQ", 8, tokens if array_count is None else array_count)
    kv += b"".join(_str(f"t{i}") for i in range(tokens))
    tensor = _str("w") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 4) + struct.pack("<IQ", 0, 0)  # type 0 = F32, offset 0
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, 3) + kv + tensor
    pad = b"\0" * (-len(head) % 32)
    path = tmp_path / "t.gguf"
    path.write_bytes(head + pad + b"\1" * data)
    return path


def test_metadata_and_array_lengths_by_hand(tmp_path):
    header = read_header(_file(tmp_path, tokens=5))
    assert (header.version, header.n_tensors) == (3, 1)
    assert header.metadata == {"general.name": "tiny", "general.alignment": 32}
    assert header.array_lengths == {"tokenizer.ggml.tokens": 5}


def test_tensor_data_cut_short_is_refused(tmp_path):
    read_header(_file(tmp_path, data=64))  # 4 x 4 float32 = 64 bytes: exactly enough
    with pytest.raises(HeaderError, match="the tensors need .* bytes and the file has"):
        read_header(_file(tmp_path, data=63))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"array_count": 10**12}, "claims 1000000000000 elements"),
        ({"n_tensors": 2}, "unknown ggml type|runs past the end"),
        ({"array_count": 4}, "runs past the end"),
    ],
)
def test_hostile_counts_are_refused_without_allocating(tmp_path, kwargs, message):
    with pytest.raises(HeaderError, match=message):
        read_header(_file(tmp_path, **kwargs))


def test_other_formats_and_versions_are_refused(tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(HeaderError, match="GGUF magic"):
        read_header(path)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(HeaderError, match="version 1"):
        read_header(path)


def test_agrees_with_gguf_reader_on_a_real_file(f32_gguf):
    from gguf import GGUFReader

    reader, header = GGUFReader(str(f32_gguf)), read_header(f32_gguf)
    assert header.n_tensors == len(reader.tensors)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if len(field.types) > 1 and key in header.array_lengths:
            assert header.array_lengths[key] == len(field.data), key
        elif key not in header.array_lengths:
            assert header.metadata[key] == pytest.approx(field.contents()), key

"""A GGUF file's header read in one pass, without building Python objects for its vocabulary.

The backend checks a file before llama.cpp loads it, so a truncated or foreign file gets one
line naming it instead of llama.cpp's stack of logs. ``gguf.GGUFReader`` does that check too,
but it maps every metadata array element by element: on Gemma 3's 262,144-token vocabulary it
took 13.3 s per load (measured), longer than llama.cpp's own load (0.8 s). This reader walks the
same layout (the GGUF v2/v3 specification: header, key/value pairs, tensor infos, aligned data)
over a memory map, skips array contents by their sizes, and checks that every tensor's bytes lie
inside the file. Every length it reads is bounded by the file's size, so a hostile header cannot
make it allocate or loop beyond that.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
#: GGUF value types: id -> struct format of a scalar (strings and arrays are handled apart)
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32


class HeaderError(ValueError):
    """The file is not a readable GGUF v2/v3 file (truncated, corrupt, or another format)."""


@dataclass(frozen=True)
class GGUFHeader:
    """The scalar and string metadata, each array's length, and the tensors' extent."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    n_tensors: int = 0


class _Cursor:
    """Reads little-endian values from a buffer, refusing to step past its end."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf, self.pos, self.size = buf, 0, len(buf)

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > self.size:
            raise HeaderError(f"the header runs past the end of the file (byte {self.pos} + {n} > {self.size})")
        start, self.pos = self.pos, self.pos + n
        return start

    def scalar(self, fmt: str) -> Any:
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.take(self.scalar("<Q"))


def _value(cur: _Cursor, vtype: int, key: str, lengths: dict[str, int]) -> Any:
    if vtype in SCALARS:
        return cur.scalar(SCALARS[vtype])
    if vtype == STRING:
        return cur.string()
    if vtype != ARRAY:
        raise HeaderError(f"unknown value type {vtype} for key {key!r}")
    etype, count = cur.scalar("<I"), cur.scalar("<Q")
    if count > cur.size:  # every element takes at least one byte
        raise HeaderError(f"array {key!r} claims {count} elements, more than the file's bytes")
    if etype in SCALARS:
        cur.take(count * struct.calcsize(SCALARS[etype]))
    elif etype == STRING:
        for _ in range(count):
            cur.skip_string()
    else:
        raise HeaderError(f"array {key!r} holds unsupported type {etype}")
    lengths[key] = count
    return None


def _tensor_bytes(dims: list[int], ggml_type: int) -> int:
    """Bytes of one tensor: elements / block size x bytes per block (gguf's table of ggml types)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise HeaderError(f"a tensor has unknown ggml type {ggml_type}") from None
    elements = 1
    for d in dims:
        elements *= d
    return elements // block * size


def read_header(path: str | Path) -> GGUFHeader:
    """The header of the GGUF at ``path``; :class:`HeaderError` when it is cut short or malformed."""
    with Path(path).open("rb") as fh:
        if fh.seek(0, 2) < 24:
            raise HeaderError("the file is shorter than a GGUF header (24 bytes)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf))


def _parse(cur: _Cursor) -> GGUFHeader:
    start = cur.take(4)
    if bytes(cur.buf[start : start + 4]) != MAGIC:
        raise HeaderError("the file does not start with the GGUF magic")
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    if n_tensors > cur.size or n_kv > cur.size:
        raise HeaderError(f"the header claims {n_tensors} tensors and {n_kv} keys, more than the file's bytes")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string()
        value = _value(cur, cur.scalar("<I"), key, lengths)
        if value is not None:
            metadata[key] = value
    extents = []
    for _ in range(n_tensors):
        cur.skip_string()
        n_dims = cur.scalar("<I")
        if n_dims > 8:
            raise HeaderError(f"a tensor claims {n_dims} dimensions")
        dims = [cur.scalar("<Q") for _ in range(n_dims)]
        ggml_type, offset = cur.scalar("<I"), cur.scalar("<Q")
        extents.append(offset + _tensor_bytes(dims, ggml_type))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_start = -(-cur.pos // alignment) * alignment
    end = data_start + max(extents, default=0)
    if end > cur.size:
        raise HeaderError(f"the tensors need {end} bytes and the file has {cur.size}")
    return GGUFHeader(version, metadata, lengths, n_tensors)

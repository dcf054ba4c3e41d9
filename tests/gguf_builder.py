"""Write small GGUF files for tests: any key/values, tensors of given types and shapes (the data
section is left sparse, so a "7B" header costs a few kB of disk)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

U32, U64, F32, BOOL, STRING, ARRAY = 4, 10, 6, 7, 8, 9


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return BOOL, struct.pack("<?", value)
    if isinstance(value, int):
        return (U32, struct.pack("<I", value)) if 0 <= value < 1 << 32 else (U64, struct.pack("<Q", value))
    if isinstance(value, float):
        return F32, struct.pack("<f", value)
    if isinstance(value, str):
        return STRING, _s(value)
    if isinstance(value, list):
        if value and isinstance(value[0], str):
            return ARRAY, struct.pack("<IQ", STRING, len(value)) + b"".join(_s(v) for v in value)
        if value and isinstance(value[0], bool):
            return ARRAY, struct.pack("<IQ", BOOL, len(value)) + struct.pack(f"<{len(value)}?", *value)
        return ARRAY, struct.pack("<IQ", U32, len(value)) + struct.pack(f"<{len(value)}I", *value)
    raise TypeError(value)


def write_gguf(path: Path, kv: dict[str, Any], tensors: list[tuple[str, int, list[int]]]) -> Path:
    """tensors: (name, ggml type id, shape). Offsets are laid out like a real file."""
    from airpods.models.gguf_header import GGML_TYPES

    out = bytearray(b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", len(tensors), len(kv)))
    for key, value in kv.items():
        vtype, raw = _value(value)
        out += _s(key) + struct.pack("<I", vtype) + raw
    offset = 0
    for name, ggml_type, shape in tensors:
        out += _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", ggml_type, offset)
        elements = 1
        for d in shape:
            elements *= d
        block, size = GGML_TYPES[ggml_type]
        offset += -(-(elements // block * size) // 32) * 32
    data_start = -(-len(out) // 32) * 32
    with open(path, "wb") as fh:
        fh.write(out)
        fh.truncate(data_start + offset)  # a sparse data section
    return path


def llama_like(arch: str, n_layer: int, n_embd: int, n_head: int, n_head_kv: int, n_ff: int, n_vocab: int,
               ctx: int, **extra: Any) -> dict[str, Any]:
    return {"general.architecture": arch, f"{arch}.block_count": n_layer, f"{arch}.context_length": ctx,
            f"{arch}.embedding_length": n_embd, f"{arch}.feed_forward_length": n_ff,
            f"{arch}.attention.head_count": n_head, f"{arch}.attention.head_count_kv": n_head_kv,
            f"{arch}.vocab_size": n_vocab, **{f"{arch}.{k}": v for k, v in extra.items()}}

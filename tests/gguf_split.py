"""Split a GGUF into N parts the way llama.cpp's gguf-split does (for tests): every part is a
GGUF of its own with `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32); the
first part keeps all the key/values, the tensors are shared out in order, each part's data
section holds its tensors at 32-byte aligned offsets. llama-server loads it from the first part."""

from __future__ import annotations

import struct
from pathlib import Path

from airpods.models.gguf_header import GGML_TYPES

ALIGN = 32


def _read_kvs(path: Path) -> tuple[list[tuple[str, bytes]], int]:
    """The KV walker of scripts/synthetic_gguf.py (raw bytes of each key/value, where they end)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "synthetic_gguf", Path(__file__).resolve().parents[1] / "scripts" / "synthetic_gguf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_kvs(path)


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def split(src: Path, out_dir: Path, stem: str, parts: int = 3) -> list[Path]:
    buf = src.read_bytes()
    _, n_tensors, _ = struct.unpack_from("<IQQ", buf, 4)
    pairs, at = _read_kvs(src)
    kvs = [raw for _, raw in pairs]
    tensors = []  # (name, dims, type, offset, nbytes)
    for _ in range(n_tensors):
        length = struct.unpack_from("<Q", buf, at)[0]
        name = buf[at + 8:at + 8 + length].decode()
        at += 8 + length
        (n_dims,) = struct.unpack_from("<I", buf, at)
        dims = list(struct.unpack_from(f"<{n_dims}Q", buf, at + 4))
        at += 4 + 8 * n_dims
        ggml_type, offset = struct.unpack_from("<IQ", buf, at)
        at += 12
        elements = 1
        for d in dims:
            elements *= d
        block, size = GGML_TYPES[ggml_type]
        tensors.append((name, dims, ggml_type, offset, elements // block * size))
    data_start = _pad(at)
    per_part = -(-len(tensors) // parts)
    paths = []
    for p in range(parts):
        mine = tensors[p * per_part:(p + 1) * per_part]
        meta = [_s("split.no") + struct.pack("<IH", 2, p), _s("split.count") + struct.pack("<IH", 2, parts),
                _s("split.tensors.count") + struct.pack("<Ii", 5, len(tensors))]
        body = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(mine), len(meta) + (len(kvs) if p == 0 else 0)))
        body += b"".join((kvs if p == 0 else []) + meta)
        offset = 0
        for name, dims, ggml_type, _, nbytes in mine:
            body += _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            body += struct.pack("<IQ", ggml_type, offset)
            offset += _pad(nbytes)
        body += b"\0" * (_pad(len(body)) - len(body))
        for _, _, _, src_offset, nbytes in mine:
            body += buf[data_start + src_offset:data_start + src_offset + nbytes]
            body += b"\0" * (_pad(nbytes) - nbytes)
        path = out_dir / f"{stem}-{p + 1:05d}-of-{parts:05d}.gguf"
        path.write_bytes(bytes(body))
        paths.append(path)
    return paths

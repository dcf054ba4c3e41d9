"""Split a GGUF into N parts the way llama.cpp's gguf-split does (for tests): every part is a
GGUF of its own with `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32); the
first part keeps all the key/values, the tensors are shared out in order, each part's data
section holds its tensors at 32-byte aligned offsets. llama-server loads it from the first part."""

from __future__ import annotations

import struct
from pathlib import Path

from airpods.models.gguf_header import GGML_TYPES

ALIGN = 32
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _skip(buf: bytes, at: int, vtype: int) -> int:
    if vtype in _SCALAR:
        return at + _SCALAR[vtype]
    if vtype == 8:
        return at + 8 + struct.unpack_from("<Q", buf, at)[0]
    etype, count = struct.unpack_from("<IQ", buf, at)
    at += 12
    if etype in _SCALAR:
        return at + _SCALAR[etype] * count
    for _ in range(count):
        at = _skip(buf, at, etype)
    return at


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def split(src: Path, out_dir: Path, stem: str, parts: int = 3) -> list[Path]:
    buf = src.read_bytes()
    _, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    at = 24
    kvs = []
    for _ in range(n_kv):
        start = at
        at += 8 + struct.unpack_from("<Q", buf, at)[0]
        at = _skip(buf, at + 4, struct.unpack_from("<I", buf, at)[0])
        kvs.append(buf[start:at])
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

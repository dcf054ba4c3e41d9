"""A llama-shaped GGUF of any size, for GPU memory and speed checks (scripts/gpu-check.sh): F16
weights (all zero, written sparse, so a 6 GiB model costs seconds and no disk), with the tokenizer
copied byte for byte from a real GGUF (SmolLM2's; only its header is read, so a header-only copy
of the file will do). Its text is noise; its memory and speed are those of a real model.

    synthetic_gguf.py OUT.gguf --tokenizer-from SmolLM2.gguf [--layers 28 --embd 3072 --ff 8192
                      --heads 24 --kv 8 --ctx 131072]
    synthetic_gguf.py HEADER_OUT --header-of SRC.gguf    # keep only SRC's header (to carry it)
    synthetic_gguf.py OUT.gguf --tokenizer-from SmolLM2.gguf --reranker [--layers 2 --embd 64 ...]

--reranker writes a small reranking model instead: llama.cpp's qwen3 architecture with its rank
head (`cls.output`, two labels, softmaxed: the score is the first), F32 weights drawn at random
(seeded), so that its scores differ from one document to the next. Its scores mean nothing; its
shape, endpoint and memory are a real reranker's.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

F32, F16 = 0, 1
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


def _skip_value(buf: bytes, at: int, vtype: int) -> int:
    if vtype in SCALAR:
        return at + SCALAR[vtype]
    if vtype == STRING:
        return at + 8 + struct.unpack_from("<Q", buf, at)[0]
    if vtype == ARRAY:
        etype, count = struct.unpack_from("<IQ", buf, at)
        at += 12
        if etype in SCALAR:
            return at + SCALAR[etype] * count
        for _ in range(count):
            at = _skip_value(buf, at, etype)
        return at
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_kvs(path: Path) -> tuple[list[tuple[str, bytes]], int]:
    """[(key, the raw bytes of key + type + value)] and where the KV section ends."""
    with open(path, "rb") as fh:
        buf = fh.read(64 << 20)  # a header: the vocabulary and merges, a few MB
    if buf[:4] != b"GGUF":
        raise SystemExit(f"{path} is not a GGUF file")
    _, _, n_kv = struct.unpack_from("<IQQ", buf, 4)
    at, out = 24, []
    for _ in range(n_kv):
        start = at
        length = struct.unpack_from("<Q", buf, at)[0]
        key = buf[at + 8:at + 8 + length].decode()
        at += 8 + length
        vtype = struct.unpack_from("<I", buf, at)[0]
        at = _skip_value(buf, at + 4, vtype)
        out.append((key, buf[start:at]))
    return out, at


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, fmt: str | None, value: object) -> bytes:
    body = _s(value) if vtype == STRING else struct.pack(fmt, value)  # type: ignore[arg-type]
    return _s(key) + struct.pack("<I", vtype) + body


def tensors(layers: int, embd: int, ff: int, heads: int, kv: int, vocab: int) -> list[tuple[str, int, list[int]]]:
    gqa = embd // heads * kv
    out = [("token_embd.weight", F16, [embd, vocab]), ("output_norm.weight", F32, [embd]),
           ("output.weight", F16, [embd, vocab])]
    for i in range(layers):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", F32, [embd]), (b + "attn_q.weight", F16, [embd, embd]),
                (b + "attn_k.weight", F16, [embd, gqa]), (b + "attn_v.weight", F16, [embd, gqa]),
                (b + "attn_output.weight", F16, [embd, embd]), (b + "ffn_norm.weight", F32, [embd]),
                (b + "ffn_gate.weight", F16, [embd, ff]), (b + "ffn_up.weight", F16, [embd, ff]),
                (b + "ffn_down.weight", F16, [ff, embd])]
    return out


def write(out: Path, src: Path, a: argparse.Namespace) -> int:
    kvs, _ = read_kvs(src)
    tok = [raw for key, raw in kvs if key.startswith("tokenizer.")]
    vocab = next((struct.unpack_from("<Q", raw, len(_s(key)) + 8)[0] for key, raw in kvs
                  if key == "tokenizer.ggml.tokens"), 0)
    if not vocab:
        raise SystemExit(f"{src} has no tokenizer.ggml.tokens")
    head = a.embd // a.heads
    meta = [_kv("general.architecture", STRING, None, "llama"),
            _kv("general.name", STRING, None, f"synthetic-{a.layers}x{a.embd}"),
            _kv("general.file_type", 4, "<I", 1),
            _kv("llama.context_length", 4, "<I", a.ctx), _kv("llama.embedding_length", 4, "<I", a.embd),
            _kv("llama.block_count", 4, "<I", a.layers), _kv("llama.feed_forward_length", 4, "<I", a.ff),
            _kv("llama.attention.head_count", 4, "<I", a.heads), _kv("llama.attention.head_count_kv", 4, "<I", a.kv),
            _kv("llama.rope.dimension_count", 4, "<I", head), _kv("llama.rope.freq_base", 6, "<f", 10000.0),
            _kv("llama.attention.layer_norm_rms_epsilon", 6, "<f", 1e-5), _kv("llama.vocab_size", 4, "<I", vocab)]
    table = tensors(a.layers, a.embd, a.ff, a.heads, a.kv, vocab)
    body = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(table), len(meta) + len(tok)))
    body += b"".join(meta) + b"".join(tok)
    offset = 0
    for name, ggml_type, shape in table:
        body += _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        body += struct.pack("<IQ", ggml_type, offset)
        elements = 1
        for d in shape:
            elements *= d
        offset += -(-(elements * (4 if ggml_type == F32 else 2)) // 32) * 32
    start = -(-len(body) // 32) * 32
    with open(out, "wb") as fh:
        fh.write(body)
        fh.truncate(start + offset)  # zero weights, sparse on disk
    return start + offset


def _random_f32(count: int, rng: object, scale: float = 0.05) -> bytes:
    from array import array

    return array("f", (rng.gauss(0.0, scale) for _ in range(count))).tobytes()  # type: ignore[attr-defined]


def write_reranker(out: Path, src: Path, a: argparse.Namespace) -> int:
    import random

    kvs, _ = read_kvs(src)
    tok = [raw for key, raw in kvs if key.startswith("tokenizer.")]
    vocab = next((struct.unpack_from("<Q", raw, len(_s(key)) + 8)[0] for key, raw in kvs
                  if key == "tokenizer.ggml.tokens"), 0)
    head, arch = a.embd // a.heads, "qwen3"
    labels = _s("qwen3.classifier.output_labels") + struct.pack("<IIQ", ARRAY, STRING, 2) + _s("yes") + _s("no")
    meta = [_kv("general.architecture", STRING, None, arch), _kv("general.name", STRING, None, "synthetic-reranker"),
            _kv("general.file_type", 4, "<I", 0), _kv(f"{arch}.context_length", 4, "<I", a.ctx),
            _kv(f"{arch}.embedding_length", 4, "<I", a.embd), _kv(f"{arch}.block_count", 4, "<I", a.layers),
            _kv(f"{arch}.feed_forward_length", 4, "<I", a.ff), _kv(f"{arch}.attention.head_count", 4, "<I", a.heads),
            _kv(f"{arch}.attention.head_count_kv", 4, "<I", a.kv), _kv(f"{arch}.attention.key_length", 4, "<I", head),
            _kv(f"{arch}.attention.value_length", 4, "<I", head), _kv(f"{arch}.rope.dimension_count", 4, "<I", head),
            _kv(f"{arch}.rope.freq_base", 6, "<f", 10000.0),
            _kv(f"{arch}.attention.layer_norm_rms_epsilon", 6, "<f", 1e-6), _kv(f"{arch}.pooling_type", 4, "<I", 4),
            labels]
    gqa = head * a.kv
    table = [("token_embd.weight", [a.embd, vocab]), ("output_norm.weight", [a.embd]),
             ("cls.output.weight", [a.embd, 2])]
    for i in range(a.layers):
        b = f"blk.{i}."
        table += [(b + "attn_norm.weight", [a.embd]), (b + "attn_q.weight", [a.embd, a.embd]),
                  (b + "attn_k.weight", [a.embd, gqa]), (b + "attn_v.weight", [a.embd, gqa]),
                  (b + "attn_output.weight", [a.embd, a.embd]), (b + "attn_q_norm.weight", [head]),
                  (b + "attn_k_norm.weight", [head]), (b + "ffn_norm.weight", [a.embd]),
                  (b + "ffn_gate.weight", [a.embd, a.ff]), (b + "ffn_up.weight", [a.embd, a.ff]),
                  (b + "ffn_down.weight", [a.ff, a.embd])]
    body = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(table), len(meta) + len(tok)))
    body += b"".join(meta) + b"".join(tok)
    offset, sizes = 0, []
    for name, shape in table:
        body += _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        body += struct.pack("<IQ", F32, offset)
        count = 1
        for d in shape:
            count *= d
        sizes.append(count)
        offset += -(-(count * 4) // 32) * 32
    rng = random.Random(1234)
    with open(out, "wb") as fh:
        fh.write(body + b"\0" * (-len(body) % 32))
        for (name, _), count in zip(table, sizes, strict=True):
            norm = name.endswith("norm.weight")  # norms at one, as trained models start
            data = struct.pack(f"<{count}f", *([1.0] * count)) if norm else _random_f32(count, rng)
            fh.write(data + b"\0" * (-len(data) % 32))
    return out.stat().st_size


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tokenizer-from", type=Path)
    ap.add_argument("--header-of", type=Path)
    ap.add_argument("--reranker", action="store_true", help="a small qwen3 reranker with random weights")
    for name, default in (("layers", 4), ("embd", 576), ("ff", 1536), ("heads", 9), ("kv", 3), ("ctx", 131072)):
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args(argv)
    if a.header_of:
        _, end = read_kvs(a.header_of)
        a.out.write_bytes(a.header_of.read_bytes()[:end])
        print(f"{a.out}: the first {end} bytes of {a.header_of} (its key/values)")
        return 0
    if not a.tokenizer_from:
        ap.error("--tokenizer-from is required")
    if a.reranker:
        size = write_reranker(a.out, a.tokenizer_from, a)
        print(f"{a.out}: qwen3 reranker, {a.layers} layers x {a.embd}, {size / (1 << 20):.1f} MiB")
        return 0
    size = write(a.out, a.tokenizer_from, a)
    print(f"{a.out}: llama, {a.layers} layers x {a.embd}, {size / (1 << 30):.2f} GiB of F16 weights")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The whole GGUF header, fast: every key/value (long arrays kept as their length only) and every
tensor's type and shape, read through mmap with struct.unpack_from. A 150k-token vocabulary is
skipped by walking string lengths, not by decoding strings, so a big header reads in a few ms
(the `gguf` package's reader builds numpy views of everything and takes seconds)."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.models.split_names import split_parts

if TYPE_CHECKING:
    from airpods.plan.draft_vocab import Vocab

MAGIC = b"GGUF"


class GGUFError(ValueError):
    pass


class GGUFTruncated(GGUFError):
    """The bytes end inside the header: a cut file, or a ranged read that needs more."""

_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
KEEP_ARRAY = 4096  # scalar arrays up to this length are kept (per-layer values); longer ones: length only

# ggml type id → (elements per block, bytes per block)
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}


@dataclass(frozen=True)
class ArrayLength:
    """A long array in the header, of which only the length was kept (e.g. the vocabulary)."""

    length: int


@dataclass(frozen=True)
class Tensor:
    name: str
    ggml_type: int
    elements: int

    @property
    def nbytes(self) -> int | None:
        block = GGML_TYPES.get(self.ggml_type)
        return None if block is None else self.elements // block[0] * block[1]


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    kv: dict[str, Any]
    tensors: tuple[Tensor, ...]
    data_offset: int
    file_size: int

    @property
    def tensor_bytes(self) -> int:
        """The weights: the sum of tensor sizes, or the data section when a type is unknown."""
        sizes = [t.nbytes for t in self.tensors]
        if sizes and all(s is not None for s in sizes):
            return sum(s for s in sizes if s is not None)
        return max(0, self.file_size - self.data_offset)


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes):
        self.buf = buf
        self.at = 0

    def take(self, fmt: str) -> Any:
        try:
            value = struct.unpack_from("<" + fmt, self.buf, self.at)
        except struct.error as exc:
            raise GGUFTruncated("file ends inside the GGUF header") from exc
        self.at += struct.calcsize("<" + fmt)
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        length = self.take("Q")
        if length > 1 << 24:
            raise GGUFError("implausible string length in the GGUF header")
        if self.at + length > len(self.buf):
            raise GGUFTruncated("file ends inside the GGUF header")
        text = bytes(self.buf[self.at:self.at + length]).decode("utf-8", "replace")
        self.at += length
        return text

    def skip_strings(self, count: int) -> None:
        """The hot loop of a big vocabulary: one bound unpack per string, nothing decoded."""
        buf, at, length = self.buf, self.at, _U64.unpack_from
        try:
            for _ in range(count):
                at += 8 + length(buf, at)[0]
        except struct.error as exc:
            raise GGUFTruncated("file ends inside the GGUF header") from exc
        if at > len(buf):
            raise GGUFTruncated("file ends inside the GGUF header")
        self.at = at

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise GGUFError(f"unknown GGUF value type {vtype}")
        etype, count = self.take("I"), self.take("Q")
        if etype in _SCALAR:
            size = struct.calcsize(_SCALAR[etype]) * count
            if count > KEEP_ARRAY:
                self.at += size
                return ArrayLength(count)
            try:
                values = struct.unpack_from(f"<{count}{_SCALAR[etype]}", self.buf, self.at)
            except struct.error as exc:
                raise GGUFTruncated("file ends inside the GGUF header") from exc
            self.at += size
            return list(values)
        if etype == _STRING:
            if count > 64:
                self.skip_strings(count)
                return ArrayLength(count)
            return [self.string() for _ in range(count)]
        for _ in range(count):  # arrays of arrays: rare; walk them
            self.value(etype)
        return ArrayLength(count)


def read_header(path: Path) -> GGUFHeader:
    size = path.stat().st_size
    if size < 24:
        raise GGUFError(f"{path} is too small to be a GGUF file")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (bad magic)")
        return parse_header(buf, size, str(path))


def parse_header(buf: mmap.mmap | bytes, file_size: int, what: str = "the file") -> GGUFHeader:
    """The header from the file's first bytes (all of a mapped file, or the start of a remote one);
    GGUFTruncated when `buf` ends inside it."""
    if len(buf) < 24:
        raise GGUFTruncated("file ends inside the GGUF header")
    if bytes(buf[:4]) != MAGIC:
        raise GGUFError(f"{what} is not a GGUF file (bad magic)")
    r = _Reader(buf)
    r.at = 4
    version = r.take("I")
    if version < 2:
        raise GGUFError(f"{what}: GGUF version {version} is too old to read")
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("I"))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        dims = r.take("I")
        shape = [r.take("Q") for _ in range(dims)]
        ggml_type, _offset = r.take("I"), r.take("Q")
        elements = 1
        for d in shape:
            elements *= d
        tensors.append(Tensor(name, ggml_type, elements))
    align = int(kv.get("general.alignment", 32) or 32)
    data_offset = (r.at + align - 1) // align * align
    return GGUFHeader(version, kv, tuple(tensors), data_offset, file_size)


def read_model(path: Path) -> GGUFHeader:
    """A model's header: its own, or for a split model (`X-00001-of-0000N.gguf`) the first part's
    key/values with every part's tensors, sizes added up (llama-server loads it from the first)."""
    first = read_header(path)
    parts = split_parts(path.name)
    if len(parts) == 1:
        return first
    tensors, size = list(first.tensors), first.file_size
    for name in parts[1:]:
        try:
            part = read_header(path.with_name(name))
        except FileNotFoundError as exc:
            raise GGUFError(f"{path.name} is split in {len(parts)} parts and {name} is missing") from exc
        tensors += part.tensors
        size += part.file_size
    return GGUFHeader(first.version, first.kv, tuple(tensors), first.data_offset, size)


TOKENS_KEY = "tokenizer.ggml.tokens"


def read_vocab(path: Path) -> Vocab:
    """A model's vocabulary from its header, the token texts kept as bytes (one pass, nothing decoded)."""
    from airpods.plan.draft_vocab import Vocab

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (bad magic)")
        r = _Reader(buf)
        r.at = 8
        _n_tensors, n_kv = r.take("Q"), r.take("Q")
        kv: dict[str, Any] = {}
        tokens: tuple[bytes, ...] = ()
        for _ in range(n_kv):
            key, vtype = r.string(), r.take("I")
            if key == TOKENS_KEY and vtype == _ARRAY and r.take("I") == _STRING:
                tokens = tuple(_raw_strings(r, r.take("Q")))
            else:
                kv[key] = r.value(vtype)
    return Vocab(kv.get("tokenizer.ggml.model"), tokens, kv.get("tokenizer.ggml.bos_token_id"),
                 kv.get("tokenizer.ggml.eos_token_id"), kv.get("tokenizer.ggml.add_bos_token"),
                 kv.get("tokenizer.ggml.add_eos_token"))


def _raw_strings(r: _Reader, count: int) -> list[bytes]:
    buf, at, length, out = r.buf, r.at, _U64.unpack_from, []
    try:
        for _ in range(count):
            n = length(buf, at)[0]
            out.append(bytes(buf[at + 8:at + 8 + n]))
            at += 8 + n
    except struct.error as exc:
        raise GGUFTruncated("file ends inside the GGUF header") from exc
    r.at = at
    return out

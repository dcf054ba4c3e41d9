"""Read the little airpods needs from a GGUF header: magic, version, architecture, file type."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
# llama.cpp's LLAMA_FTYPE values (general.file_type) → the quantization name users know.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
WANTED = ("general.architecture", "general.file_type", "general.name")


class GGUFError(ValueError):
    pass


@dataclass(frozen=True)
class GGUFInfo:
    version: int
    architecture: str | None
    quantization: str | None
    name: str | None


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def _read(fh: BinaryIO, fmt: str) -> object:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise GGUFError("file ends inside the GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    length = int(_read(fh, "<Q"))  # type: ignore[arg-type]
    if length > 1 << 24:
        raise GGUFError("implausible string length in the GGUF header")
    return fh.read(length).decode("utf-8", "replace")


def _value(fh: BinaryIO, vtype: int, keep: bool) -> object:
    if vtype in _SCALARS:
        return _read(fh, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(fh)
    if vtype == _ARRAY:
        etype, count = int(_read(fh, "<I")), int(_read(fh, "<Q"))  # type: ignore[arg-type]
        if etype in _SCALARS:  # skip fixed-size arrays without reading them
            fh.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
        else:
            for _ in range(count):
                _value(fh, etype, False)
        return None
    raise GGUFError(f"unknown GGUF value type {vtype}")


def read_info(path: Path) -> GGUFInfo:
    with open(path, "rb") as fh:
        if fh.read(4) != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (bad magic)")
        version = int(_read(fh, "<I"))  # type: ignore[arg-type]
        if version < 2:
            return GGUFInfo(version, None, None, None)
        _read(fh, "<Q")  # tensor count
        kv_count = int(_read(fh, "<Q"))  # type: ignore[arg-type]
        found: dict[str, object] = {}
        for _ in range(kv_count):
            key = _string(fh)
            vtype = int(_read(fh, "<I"))  # type: ignore[arg-type]
            value = _value(fh, vtype, key in WANTED)
            if key in WANTED:
                found[key] = value
                if len(found) == len(WANTED):
                    break
    ftype = found.get("general.file_type")
    quant = FILE_TYPES.get(int(ftype), f"type {ftype}") if isinstance(ftype, int) else None
    arch = found.get("general.architecture")
    name = found.get("general.name")
    return GGUFInfo(version, str(arch) if arch else None, quant, str(name) if name else None)

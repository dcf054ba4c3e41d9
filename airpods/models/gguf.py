"""Read the little airpods needs from a GGUF header: magic, version, architecture, file type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airpods.models.gguf_header import MAGIC, GGUFError, read_header

__all__ = ["MAGIC", "GGUFError", "GGUFInfo", "is_gguf", "read_info", "read_version"]

# llama.cpp's LLAMA_FTYPE values (general.file_type) → the quantization name users know.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}
WANTED = ("general.architecture", "general.file_type", "general.name")


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


def read_info(path: Path) -> GGUFInfo:
    """What `models list` shows, from the one header reader (gguf_header.py); GGUFError names a
    broken or truncated file."""
    kv = read_header(path).kv
    arch, ftype, name = (kv.get(k) for k in WANTED)
    quant = FILE_TYPES.get(int(ftype), f"type {ftype}") if isinstance(ftype, int) else None
    return GGUFInfo(int(read_version(path)), str(arch) if isinstance(arch, str) and arch else None, quant,
                    str(name) if isinstance(name, str) and name else None)


def read_version(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(8)
    return int.from_bytes(head[4:8], "little") if len(head) == 8 else 0

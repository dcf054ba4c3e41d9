"""The names of a split model's parts: `STEM-0000K-of-0000N.gguf`, the first part standing for all.
Pure functions of a name; the lowest of the model modules (the header reader, the store and the
hub listing use them)."""

from __future__ import annotations

import re

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf\Z")


def split_parts(name: str) -> list[str]:
    """Every part's file name of a split model named by its first part (`X-00001-of-00003.gguf`
    → the three names); [name] for a model in one file."""
    m = _SPLIT.match(name)
    if not m or m.group("no") != "00001":
        return [name]
    count = int(m.group("count"))
    return [f"{m.group('stem')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def split_count(path: str) -> int | None:
    """N of a split part's `-0000K-of-0000N`; None for a model in one file."""
    m = _SPLIT.match(path)
    return int(m.group("count")) if m else None


def split_stem(path: str) -> str:
    """A GGUF path without `.gguf` and without a split part's `-0000K-of-0000N` (the model's stem)."""
    m = _SPLIT.match(path)
    return m.group("stem") if m else path.removesuffix(".gguf")


def is_later_part(name: str) -> bool:
    m = _SPLIT.match(name)
    return bool(m) and m.group("no") != "00001"

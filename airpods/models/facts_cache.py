"""Each model's header facts, kept between commands.

Reading a GGUF header walks its whole vocabulary: 7 ms for SmolLM2's 49k tokens, ~18 ms for 150k
tokens and 150k merges. `start`'s memory check, a router's resident set (worked out by every
command that resolves its specs, `status` included) and `models list` need each model's facts,
so they are kept in one file in airpods' cache folder, keyed by the model file's path, size and
change time and by airpods' own header code. A cache problem is never an error: the header is
read again."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from airpods.plan import cache
from airpods.plan.memory import ModelFacts

KEEP = 256  # models remembered; the oldest go first
_CODE = ("plan/memory.py", "models/gguf_header.py", "models/split_names.py")


def facts_cache_path(environ: Mapping[str, str]) -> Path:
    return cache.cache_path(environ).with_name("model-facts.json")


def _code_key() -> str:
    root = Path(__file__).resolve().parent.parent
    stamps = []
    for name in _CODE:
        with contextlib.suppress(OSError):
            stamps.append(str((root / name).stat().st_mtime_ns))
    return "facts/1/" + "/".join(stamps)


class FactsCache:
    """Read once per command; written when a header had to be read."""

    def __init__(self, path: Path):
        self.path = path
        self._key = _code_key()
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            payload = cache.load(self.path, self._key)
            self._entries = payload if isinstance(payload, dict) else {}
        return self._entries

    def get(self, file: str, mtime_ns: int, size: int) -> ModelFacts | None:
        entry = self._load().get(file)
        if not isinstance(entry, dict) or entry.get("stamp") != [mtime_ns, size]:
            return None
        try:
            values = entry["facts"]
            return ModelFacts(**{f.name: tuple(values[f.name]) if isinstance(values[f.name], list)
                                 else values[f.name] for f in fields(ModelFacts)})
        except (KeyError, TypeError):
            return None

    def put(self, file: str, mtime_ns: int, size: int, facts: ModelFacts) -> None:
        entries = self._load()
        entries.pop(file, None)
        entries[file] = {"stamp": [mtime_ns, size], "facts": asdict(facts)}
        while len(entries) > KEEP:
            entries.pop(next(iter(entries)))
        cache.save(self.path, self._key, entries)

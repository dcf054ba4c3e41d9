"""The memory each llama.cpp container really held once healthy, next to the estimate its start
was checked against (loads.jsonl beside the bench history): `models fit` shows it. Right after
the load the KV cache is allocated but mostly untouched (its pages are counted once a context
fills them), so this is below the estimate by up to the KV cache; the bench's peak, after a
prompt, is the figure the estimate is checked against (docs/benchmarks.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airpods.kinds import kind_of
from airpods.runtime.port import ContainerRuntime

KEEP = 1000  # lines kept; the oldest go first


def loads_path(environ: Mapping[str, str]) -> Path:
    from airpods.paths import bench_dir

    return bench_dir(environ) / "loads.jsonl"


def record(environ: Mapping[str, str], runtime: ContainerRuntime, specs: dict[str, Any], outcomes: list[Any]) -> int:
    """One line per llama.cpp service this start made healthy (not one already running); how many."""
    lines = []
    for o in outcomes:
        spec = specs.get(o.service)
        if spec is None or o.health != "healthy" or not kind_of(spec.kind).llama_server or not spec.memory_estimate:
            continue
        used = runtime.memory_usage(spec.container)
        if not used:
            continue
        lines.append({"at": time.time(), "service": spec.name, "model": spec.run.model_in_volume,
                      "estimate_bytes": spec.memory_estimate, "memory_bytes": used})
    if lines:
        path = loads_path(environ)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text(encoding="utf-8").splitlines()[-KEEP:] if path.is_file() else []
        from airpods.secrets import write_atomic

        write_atomic(path, "\n".join([*old, *(json.dumps(x) for x in lines)]) + "\n", 0o644)
    return len(lines)


def load(environ: Mapping[str, str], model: str | None = None) -> list[dict[str, Any]]:
    try:
        text = loads_path(environ).read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and (model is None or r.get("model") == model):
            out.append(r)
    return out

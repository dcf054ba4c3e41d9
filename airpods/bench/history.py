"""Every `airpods bench` run, one JSON object per line in airpods' data folder (history.jsonl),
and what the history says: a run slower than the previous run of the same model and settings by
more than DROP is flagged, with what changed between the two (an image, a driver, the threads)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DROP = 0.10  # a fall in generation tokens/s beyond this fraction is flagged
SAME = ("model", "device", "prompt_tokens", "gen_tokens", "parallel")  # what makes two runs comparable
SAME_FLAGS = ("ctx", "gpu_layers", "cache_k", "cache_v")
# What may differ between two comparable runs, and is named when a run is slower
CAUSES = (("image_digest", "image"), ("airpods_version", "airpods"), ("driver", "driver"), ("cpu", "CPU"))
SPARKS = "▁▂▃▄▅▆▇█"
CSV_FIELDS = ("at", "model", "service", "quant", "device", "prompt_tokens", "gen_tokens", "parallel", "repeat",
              "prompt_tokens_per_s", "generation_tokens_per_s", "first_token_ms", "memory_bytes", "estimate_bytes",
              "predicted_generation_tokens_per_s", "threads", "ctx", "gpu_layers", "image_digest", "airpods_version")


def history_path(environ: Mapping[str, str]) -> Path:
    from airpods.paths import bench_dir

    return bench_dir(environ) / "history.jsonl"


def append(environ: Mapping[str, str], record: dict[str, Any]) -> Path:
    import os

    path = history_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def load(environ: Mapping[str, str], model: str | None = None) -> list[dict[str, Any]]:
    """The runs, oldest first (a line that is not a run is skipped); `model`: its runs alone."""
    try:
        lines = history_path(environ).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and (model is None or model in (r.get("model"), r.get("model_id"))):
            out.append(r)
    return out


def _key(r: dict[str, Any]) -> tuple:
    flags = r.get("flags") or {}
    return tuple(r.get(k) for k in SAME) + tuple(flags.get(k) for k in SAME_FLAGS)


def flagged(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """index -> why, for each run slower than the previous comparable one by more than DROP."""
    out: dict[int, dict[str, Any]] = {}
    last: dict[tuple, dict[str, Any]] = {}
    for i, r in enumerate(records):
        key, now = _key(r), r.get("generation_tokens_per_s")
        before = last.get(key)
        if before is not None and now and before.get("generation_tokens_per_s"):
            was = before["generation_tokens_per_s"]
            if now < was * (1 - DROP):
                out[i] = {"previous": was, "drop_percent": round(100 * (1 - now / was), 1),
                          "changed": changes(before, r)}
        if now:
            last[key] = r
    return out


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two comparable runs, in words ("threads 2 -> 1", "image ...")."""
    out = []
    t0, t1 = (before.get("flags") or {}).get("threads"), (after.get("flags") or {}).get("threads")
    if t0 != t1:
        out.append(f"threads {t0} -> {t1}")
    for key, word in CAUSES:
        if before.get(key) != after.get(key):
            out.append(f"{word} {str(before.get(key))[:19]} -> {str(after.get(key))[:19]}")
    return out


def sparkline(values: list[float]) -> str:
    """One character per value, its height against the largest."""
    top = max(values, default=0) or 1
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values)


def as_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        flags = r.get("flags") or {}
        w.writerow({**r, **{k: flags.get(k) for k in ("threads", "ctx", "gpu_layers")}})
    return buf.getvalue()

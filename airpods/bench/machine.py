"""This machine's figures for the speed predictions (plan/speed.py): the memory bandwidth
`airpods doctor` measures (a copy of a buffer larger than any cache, best of a few), kept in
machine.json, and the samples every bench recorded (history.jsonl)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airpods.plan.speed import Machine, Sample, calibrate

PROBE_BYTES = 128 << 20  # twice this in memory for a moment; far larger than any CPU cache
ROUNDS = 3


def measure_bandwidth(size: int = PROBE_BYTES, rounds: int = ROUNDS, clock: Any = time.perf_counter) -> float:
    """Bytes/s one thread moves through memory: a buffer copied into another (read + write), the
    fastest of `rounds` copies after one that touches every page."""
    src, dst = bytearray(size), bytearray(size)
    dst[:] = src  # every page touched once: no page fault is timed
    best = float("inf")
    for _ in range(rounds):
        t0 = clock()
        dst[:] = src
        best = min(best, clock() - t0)
    return 2 * size / max(best, 1e-9)


def machine_path(environ: Mapping[str, str]) -> Path:
    from airpods.paths import bench_dir

    return bench_dir(environ) / "machine.json"


def stored_bandwidth(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """{"bandwidth": bytes/s, "measured_at": epoch} as doctor stored it, or None."""
    try:
        data = json.loads(machine_path(environ).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("bandwidth"), (int, float)) else None


def store_bandwidth(environ: Mapping[str, str], bandwidth: float) -> None:
    from airpods.secrets import write_atomic

    path = machine_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"bandwidth": bandwidth, "measured_at": time.time()}), 0o644)


def samples(records: list[dict[str, Any]]) -> list[Sample]:
    """The calibration samples of the bench history's records (those that measured generation)."""
    out = []
    for r in records:
        gen = r.get("generation_tokens_per_s")
        if not gen or not r.get("weights"):
            continue
        threads = (r.get("flags") or {}).get("threads")
        out.append(Sample(str(r.get("model")), int(r["weights"]), float(r.get("kv_bytes") or 0.0), float(gen),
                          r.get("prompt_tokens_per_s"), threads, str(r.get("device") or "cpu")))
    return out


def figures(environ: Mapping[str, str], *, device: str = "cpu", exclude: str | None = None,
            threads: int | None = None) -> Machine:
    """This machine's figures for `device`, from its benches, else doctor's bandwidth."""
    from airpods.bench.history import load

    probe = stored_bandwidth(environ)
    return calibrate(samples(load(environ)), probe["bandwidth"] if probe else None, device=device,
                     exclude=exclude, threads=threads)

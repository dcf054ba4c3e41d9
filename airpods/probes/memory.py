"""How much memory this machine (or the cgroup airpods runs in) has, and how much VRAM is free.

Reads only the paths and PATH it is given and returns data; never touches os.environ."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MemoryInfo:
    total: int  # bytes: MemTotal, or a tighter cgroup limit
    source: str  # "MemTotal" or the cgroup file that set it


def _meminfo_total(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit(proc_cgroup: Path, root: Path) -> tuple[int, str] | None:
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits: list[tuple[int, str]] = []
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        parts = [p for p in rel.split("/") if p and p != ".."]
        if hid == "0" and controllers == "":
            files = [(root.joinpath(*parts[:n]) / "memory.max") for n in range(len(parts), 0, -1)]
        elif "memory" in controllers.split(","):
            files = [(root / "memory").joinpath(*parts[:n]) / "memory.limit_in_bytes"
                     for n in range(len(parts), -1, -1)]
        else:
            continue
        for f in files:
            try:
                text = f.read_text().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < 1 << 60:  # v1 "no limit" is a huge number
                limits.append((int(text), str(f)))
    return min(limits) if limits else None


def probe_memory(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> MemoryInfo:
    total = _meminfo_total(proc / "meminfo") or 0
    limit = _cgroup_limit(proc / "self" / "cgroup", cgroup_root)
    if limit and (not total or limit[0] < total):
        return MemoryInfo(limit[0], limit[1])
    return MemoryInfo(total, "MemTotal")


def free_vram(variant: str, path: str) -> list[int] | None:
    """Free bytes per GPU (nvidia-smi for cuda, rocm-smi for rocm); None when it cannot be asked."""
    if variant == "rocm":  # the inventory probe reads rocm-smi's table
        from airpods.probes.gpu import ProbeEnv, amd_inventory

        return [g.free for g in amd_inventory(ProbeEnv(path=path))] or None
    if variant != "cuda" or not (smi := shutil.which("nvidia-smi", path=path)):
        return None
    argv = [smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return None
    return [int(v.strip()) << 20 for v in out.splitlines() if v.strip().isdigit()] or None  # MiB

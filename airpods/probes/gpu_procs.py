"""VRAM held by each container's processes: nvidia-smi's compute apps (pid, GPU, memory), each
pid mapped to its container by the cgroup it lives in (`/proc/PID/cgroup` names the container's
64-hex id under libpod). Returns data; on a machine without nvidia-smi, nothing. (rocm-smi's
per-process listing is not read yet: AMD GPUs show no per-service VRAM.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from airpods.probes.gpu import ProbeEnv, _run

_ID = re.compile(r"(?:libpod-|/libpod/|containers/)([0-9a-f]{64})")


def container_of(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    """The container id a host pid runs in, from its cgroup; None for a process outside one."""
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    m = _ID.search(text)
    return m.group(1) if m else None


def nvidia_process_vram(env: ProbeEnv) -> list[tuple[int, str, int]]:
    """(pid, GPU uuid, bytes) of every process using an NVIDIA GPU."""
    smi = shutil.which("nvidia-smi", path=env.path)
    out = _run([smi, "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"]) if smi else None
    rows = []
    for line in (out or "").splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 3 and cells[0].isdigit() and cells[2].isdigit():
            rows.append((int(cells[0]), cells[1], int(cells[2]) << 20))
    return rows


def vram_by_container(env: ProbeEnv, uuid_to_index: dict[str, int], proc_root: Path = Path("/proc")
                      ) -> dict[str, dict[int, int]]:
    """container id -> {GPU index: bytes its processes hold}."""
    out: dict[str, dict[int, int]] = {}
    for pid, uuid, size in nvidia_process_vram(env):
        cid = container_of(pid, proc_root)
        if cid is None or uuid not in uuid_to_index:
            continue
        gpus = out.setdefault(cid, {})
        gpus[uuid_to_index[uuid]] = gpus.get(uuid_to_index[uuid], 0) + size
    return out

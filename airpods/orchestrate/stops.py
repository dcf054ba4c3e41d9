"""When airpods itself last stopped each container. Exit code 137 (SIGKILL) is then read right:
after `airpods stop` (its timeout ran out, or --timeout 0) it was stopped on purpose; without one
the kernel killed it, most likely for memory (cgroups v1 with runc never sets OOMKilled)."""

from __future__ import annotations

import time
from pathlib import Path

from airpods.orchestrate.failures import load, save


def record(path: Path, containers: list[str]) -> None:
    data = load(path)
    now = time.time()
    for name in containers:
        data[name] = now
    save(path, data)


def stopped_at(path: Path) -> dict[str, float]:
    """container -> when airpods last stopped it (epoch seconds)."""
    return {k: float(v) for k, v in load(path).items() if isinstance(v, (int, float))}


def on_purpose(state: object, stops: dict[str, float], since: float | None = None) -> bool:
    """Whether a SIGKILL-ed container was stopped by airpods after it (last) started, or after
    `since` (a start that is waiting for it)."""
    name = getattr(state, "name", "")
    started = since if since is not None else getattr(state, "started_at", None)
    at = stops.get(name)
    return at is not None and (started is None or at >= started - 1)

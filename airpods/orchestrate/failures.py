"""The last start failure worth remembering per service (out of memory), so that `status` can say
why a service is down after `start` stopped it. Keyed by the spec hash: a changed config forgets it."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path


def load(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, dict]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(path)


def record(path: Path, service: str, spec_hash: str, reason: str, details: list[str]) -> None:
    data = load(path)
    data[service] = {"spec_hash": spec_hash, "reason": reason, "details": details, "at": int(time.time())}
    save(path, data)


def clear(path: Path, services: list[str]) -> None:
    data = load(path)
    if any(data.pop(s, None) is not None for s in services):
        save(path, data)


def current(path: Path, service: str, spec_hash: str) -> dict | None:
    entry = load(path).get(service)
    return entry if entry and entry.get("spec_hash") == spec_hash else None

"""A cache of resolved specs, so that status/stop/logs skip validation and templating.

The key hashes everything `resolve()` reads: the config texts, the GPU override and probe
results, the --cpu flag, the state of the secrets directory, and airpods' own code. The file
holds API keys, so it is written with mode 0600; a cache problem is never an error."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from airpods import __version__

FORMAT = 1
_CODE_DIRS = ("config", "plan", "probes", "configs")


def cache_path(environ: Any) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airpods" / "specs.json"


def _code_stamp() -> list[float]:
    root = Path(__file__).resolve().parent.parent
    stamps = []
    for sub in _CODE_DIRS:
        for path in sorted((root / sub).glob("*.*")):
            with contextlib.suppress(OSError):
                stamps.append(path.stat().st_mtime_ns)
    return stamps


def _dir_state(directory: Path) -> list[tuple[str, int, int]]:
    try:
        return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir())
    except OSError:
        return []


def key(texts: list[str], gpu_override: str | None, force_cpu: bool, probes: tuple, secrets_dir: Path) -> str:
    blob = json.dumps({
        "format": FORMAT, "version": __version__, "code": _code_stamp(), "texts": texts,
        "gpu": gpu_override, "cpu": force_cpu, "probes": [repr(p) for p in probes],
        "secrets": _dir_state(secrets_dir), "data": str(secrets_dir),
    }, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def load(path: Path, wanted: str) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != wanted:  # a file of another shape is no hit
        return None
    payload = data.get("payload")
    return payload if isinstance(payload, dict) else None


def save(path: Path, wanted: str, payload: dict) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"key": wanted, "payload": payload}, fh)
        tmp.replace(path)

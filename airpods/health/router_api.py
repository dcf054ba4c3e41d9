"""llama-server's router API (GET /models, POST /models/load|unload), stdlib only."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airpods.errors import RuntimeFailure


@dataclass(frozen=True)
class RouterModelState:
    id: str
    aliases: tuple[str, ...]
    state: str  # loaded | loading | unloaded | sleeping | failed | downloading
    file: str | None
    exit_code: int | None = None

    def to_json(self, service: str) -> dict[str, Any]:
        return {"service": service, "id": self.id, "aliases": list(self.aliases), "state": self.state,
                "file": self.file, "exit_code": self.exit_code}


def _request(base: str, method: str, path: str, key: str | None, body: dict | None = None,
             timeout: float = 5.0) -> tuple[int, Any]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


def _state(entry: dict) -> RouterModelState:
    """One entry of the router's /models, read as far as it has the shape llama-server gives it."""
    status = entry.get("status")
    status = status if isinstance(status, dict) else {"value": status}  # a bare string: its state
    value = str(status.get("value") or "unknown")
    if status.get("failed"):
        value = "failed"
    path = entry.get("path")
    aliases = entry.get("aliases")
    code = status.get("exit_code")
    return RouterModelState(str(entry.get("id")), tuple(str(a) for a in aliases) if isinstance(aliases, list) else (),
                            value, str(path).rsplit("/", 1)[-1] if path else None,
                            code if isinstance(code, int) and not isinstance(code, bool) else None)


def list_models(base: str, key: str | None, timeout: float = 2.0) -> list[RouterModelState] | None:
    """The router's models with their state; None when it does not answer (yet)."""
    try:
        status, data = _request(base, "GET", "/models", key, timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200 or not isinstance(data, dict):
        return None
    entries = data.get("data")
    return [_state(m) for m in entries if isinstance(m, dict)] if isinstance(entries, list) else []


def load(base: str, key: str | None, model: str, *, unload: bool = False) -> None:
    verb = "unload" if unload else "load"
    try:
        status, data = _request(base, "POST", f"/models/{verb}", key, {"model": model}, timeout=30.0)
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"the router at {base} did not answer: {exc}",
                             hint="is the service running? airpods status") from exc
    if status != 200 or not (isinstance(data, dict) and data.get("success", True)):
        message = data.get("error", {}).get("message") if isinstance(data, dict) else data
        raise RuntimeFailure(f"{verb} {model}: HTTP {status}: {message}")


def reload(base: str, key: str | None) -> None:
    """Have the router read its preset again (`GET /models?reload=1`): a model added to it becomes
    loadable, running ones it did not change keep running."""
    try:
        status, data = _request(base, "GET", "/models?reload=1", key, timeout=30.0)
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"the router at {base} did not answer: {exc}",
                             hint="is the service running? airpods status") from exc
    if status != 200:
        raise RuntimeFailure(f"the router at {base} did not reload its models: HTTP {status}: {data}")

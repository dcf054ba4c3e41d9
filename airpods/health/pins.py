"""Keeping a router's pinned models loaded. llama-server's router evicts the least recently used
idle model when a request needs room (--models-max) and knows no pins; a request (POST) marks a
model used. So the watcher touches each pinned model with a tokenize request every tick: it stays
the most recently used, is never the one evicted by a later request, and is loaded again at once
if it was unloaded anyway (an explicit `models unload`, a crash of its child)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from airpods.plan.spec import LABEL_HEALTH_KEY, LABEL_PINS, LABEL_URL
from airpods.runtime.port import ContainerState


def pins_of(state: ContainerState) -> tuple[str, list[str], str | None]:
    """(router base URL, pinned ids, the probe key's host file) from a router container's labels."""
    url = state.labels.get(LABEL_URL, "").removesuffix("/v1")
    pins = [p for p in state.labels.get(LABEL_PINS, "").split(",") if p]
    return url, pins, state.labels.get(LABEL_HEALTH_KEY) or None


def touch(base_url: str, model: str, key_file: str | None, timeout: float = 5.0) -> None:
    """One POST for `model` through the router (loading it when it is not)."""
    headers = {"Content-Type": "application/json"}
    if key_file:
        headers["Authorization"] = "Bearer " + Path(key_file).read_text(encoding="utf-8").strip()
    req = urllib.request.Request(f"{base_url}/tokenize", data=json.dumps({"model": model, "content": "."}).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()

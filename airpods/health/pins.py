"""Keeping a router's pinned models loaded. llama-server's router evicts the least recently used
idle model when a request needs room (--models-max) and knows no pins; a request (POST) marks a
model used. So the watcher touches each pinned model with a tokenize request every tick: it stays
the most recently used, is never the one evicted by a later request, and is loaded again at once
if it was unloaded anyway (an explicit `models unload`, a crash of its child).

Where the request goes and which key it carries are never taken from a label: the URL is a port
airpods published for the router that Podman says the running container publishes, and the key
is the router's probe key from airpods' own secrets folder."""

from __future__ import annotations

import json
import urllib.request

from airpods.plan.spec import LABEL_PINS, LABEL_PORTS, host_url, same_binding
from airpods.runtime.port import ContainerState


def pins_of(state: ContainerState) -> list[str]:
    """A router container's pinned model ids (its sealed label)."""
    return [p for p in state.labels.get(LABEL_PINS, "").split(",") if p]


def published_base(state: ContainerState) -> str | None:
    """http://HOST:PORT of the first port airpods published for the container (its sealed label)
    that Podman says it publishes now; None when there is none (stopped, or not what was made)."""
    for item in state.labels.get(LABEL_PORTS, "").split(","):
        ip, _, rest = item.rpartition(":")
        host_ip, _, host = ip.rpartition(":")
        if host.isdigit() and rest.isdigit() and same_binding(state.ports, host_ip, int(host), int(rest)):
            return host_url("http", host_ip, int(host))
    return None


def touch(base_url: str, model: str, key: str | None, timeout: float = 5.0) -> None:
    """One POST for `model` through the router (loading it when it is not)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(f"{base_url}/tokenize", data=json.dumps({"model": model, "content": "."}).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - a published port of our own
        resp.read()

"""kind = "hub": HAProxy behind the gateway, routing each /v1 request by the model it names to the
local llama.cpp services and to other airpods hosts (docs/hosts.md; plan/hub.py writes its config)."""

from __future__ import annotations

from airpods.kinds.base import Confine, ServiceKind

PORT = 8400  # on the airpods network only: never published (it holds the other hosts' keys)

# No check of its own: the upstream image has no HTTP client; the gateway's routes and
# `airpods hosts list` show whether it answers. Its image runs as haproxy (uid 99), which cannot
# start Podman's init in rootless Podman; HAProxy's master process handles the signals itself.
KIND = ServiceKind("hub", "the hub", model_router=True, wired=True,
                   confine=Confine(True, (), False), run_as=99, top=True)

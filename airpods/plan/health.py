"""The health check each container carries after start (Podman's --health-cmd and friends), from
its kind (airpods/kinds/: each kind's module writes its check). Pure: a shell script for the
image's own tools (the upstream images' curl, wget or python3), run inside the container, that
says why on failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airpods.kinds import Check, kind_of
from airpods.plan.spec import HEALTH_KEY_PATH, HealthSpec

KEY_PATH = HEALTH_KEY_PATH  # the probe's key in a llama.cpp container (also in --api-key-file)


@dataclass(frozen=True)
class CheckFacts:
    """What a service's check is made from."""

    kind: str
    port: int | None  # the container port its server listens on
    router: bool = False
    keyed: bool = False  # llama.cpp with an API key: the probe reads KEY_PATH
    timeout: float = 10.0  # seconds one probe request may take


def script(f: CheckFacts) -> str | None:
    """The check's shell text (each kind's module writes its own), or None where the kind has none."""
    check = kind_of(f.kind).check
    return check(Check(f.port, router=f.router, keyed=f.keyed, timeout=f.timeout)) if check else None


def health_spec(h: Any, kind: str, published: int | None, argv_port: Any, *, router: bool, keyed: bool,
                start_wait: float) -> HealthSpec:
    """A service's HealthSpec from its `health` table: the start wait's URLs (`start_wait`
    seconds) and the check Podman runs after it. A llama.cpp server listens on its argv's port
    (llama-server's own default 8080)."""
    k = kind_of(kind)
    port = int(argv_port or published or k.listen_default) if k.listen_default else published
    check = script(CheckFacts(kind, port, router=router, keyed=keyed, timeout=h.probe_timeout)) if h.interval else None
    return HealthSpec(h.path, tuple(h.expected_status), start_wait, k.gates,
                      check=check or "", interval=h.interval if check else 0.0, retries=h.retries,
                      start_period=start_wait if h.start_period is None else h.start_period,
                      probe_timeout=h.probe_timeout, max_restarts=h.max_restarts)

"""Stop: reverse dependency order, graceful, volumes always kept."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airpods.plan.order import dependencies, waves
from airpods.plan.spec import ServiceSpec


@dataclass
class Stopped:
    service: str
    result: str  # stopped | removed | not running | absent
    seconds: float


def stop(runtime: Any, specs: dict[str, ServiceSpec], selected: list[str], *, timeout: int | None,
         remove: bool) -> list[Stopped]:
    order = waves(selected, dependencies(specs))  # only what was asked for (never its dependencies); dependents first
    out: list[Stopped] = []

    def one(name: str) -> Stopped:
        spec = specs[name]
        began = time.monotonic()
        state = runtime.inspect(spec.container)
        pod = runtime.pod_exists(spec.pod)
        if state is None and not pod:
            return Stopped(name, "absent", 0.0)
        was_running = bool(state and state.running)
        if pod:
            runtime.stop_pod(spec.pod, spec.stop_timeout if timeout is None else timeout)
        if remove:
            runtime.remove_pod(spec.pod)
            if state is not None and not pod:
                runtime.remove_container(spec.container)
            return Stopped(name, "removed", time.monotonic() - began)
        return Stopped(name, "stopped" if was_running else "not running", time.monotonic() - began)

    for wave in reversed(order):
        with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
            out += list(pool.map(one, wave))
    return out

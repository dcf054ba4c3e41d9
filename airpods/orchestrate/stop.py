"""Stop (and clean): what Podman runs for this project, found by label, in reverse dependency
order, graceful; volumes always kept. The config only adds the pods it names that exist without a
container; it is not needed at all (stop and clean work when it does not validate)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airpods.errors import UsageError
from airpods.orchestrate.running import Running, owned_by
from airpods.plan.order import waves
from airpods.plan.spec import ServiceSpec

if TYPE_CHECKING:
    from airpods.runtime.port import ContainerRuntime


@dataclass
class Stopped:
    service: str
    result: str  # stopped | removed | not running | absent
    seconds: float
    note: str = ""  # e.g. "orphaned: service removed from the config"


@dataclass(frozen=True)
class Target:
    """One pod (or a container without a pod) of a service."""

    service: str
    pod: str | None
    container: str | None
    stop_timeout: int
    depends_on: tuple[str, ...] = ()
    note: str = ""


def targets(runtime: ContainerRuntime, project: str, running: list[Running], specs: dict[str, ServiceSpec] | None,
            names: list[str] | None) -> list[Target]:
    """The pods to stop: every container of this project (of `names`, when given) and the config's
    pods that exist without one. Never an object of another project or not created by airpods."""
    known = set(specs or {}) | {r.service for r in running}
    if names:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"unknown service {', '.join(repr(u) for u in unknown)}: neither in the config nor "
                             "running in this project", hint=f"services known: {', '.join(sorted(known)) or 'none'}")
    wanted = set(names) if names else known
    out: dict[tuple[str | None, str | None], Target] = {}
    for r in running:
        if r.service in wanted:
            reason = r.orphan_reason(specs)
            spec = (specs or {}).get(r.service)
            timeout = r.stop_timeout if r.stop_timeout is not None else (spec.stop_timeout if spec else 10)
            out[(r.pod, None if r.pod else r.container)] = Target(
                r.service, r.pod, r.container, timeout, r.depends_on, f"orphaned: {reason}" if reason else "")
    for name, spec in (specs or {}).items():
        if name in wanted and (spec.pod, None) not in out and owned_by(runtime.pod_labels(spec.pod), project):
            out[(spec.pod, None)] = Target(name, spec.pod, None, spec.stop_timeout, spec.depends_on)
    return list(out.values())


def stop(runtime: ContainerRuntime, found: list[Target], *, timeout: int | None, remove: bool,
         services: list[str] | None = None) -> list[Stopped]:
    """Stop (or remove) every target; `services` named on the command line that have nothing to
    stop are reported as absent."""
    by_service: dict[str, list[Target]] = {}
    for t in found:
        by_service.setdefault(t.service, []).append(t)
    deps = {s: [d for t in ts for d in t.depends_on if d in by_service] for s, ts in by_service.items()}
    out: list[Stopped] = [Stopped(n, "absent", 0.0) for n in services or [] if n not in by_service]

    def one(t: Target) -> Stopped:
        began = time.monotonic()
        state = runtime.inspect(t.container) if t.container else None
        was_running = bool(state and state.running)
        seconds = t.stop_timeout if timeout is None else timeout
        if t.pod:
            runtime.stop_pod(t.pod, seconds)
        if remove:
            if t.pod:
                runtime.remove_pod(t.pod)
            if t.container and runtime.inspect(t.container) is not None:
                runtime.remove_container(t.container)
            return Stopped(t.service, "removed", time.monotonic() - began, t.note)
        return Stopped(t.service, "stopped" if was_running else "not running", time.monotonic() - began, t.note)

    for wave in reversed(waves(list(by_service), deps)):  # dependents first
        batch = [t for s in wave for t in by_service[s]]
        with ThreadPoolExecutor(max_workers=max(1, len(batch))) as pool:
            out += list(pool.map(one, batch))
    return out


def stop_services(runtime: ContainerRuntime, project: str, specs: dict[str, ServiceSpec] | None,
                  names: list[str] | None, *, timeout: int | None, remove: bool) -> list[Stopped]:
    """Find this project's targets in Podman and stop (or remove) them."""
    from airpods.orchestrate.running import in_project

    found = targets(runtime, project, in_project(runtime.list_managed(), project), specs, names or None)
    return stop(runtime, found, timeout=timeout, remove=remove, services=list(names or []))

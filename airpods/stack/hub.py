"""The hub's routes, kept true: ask each member what it serves (this host's llama.cpp services on
the ports Podman says are theirs, the other hosts through TLS checked against their own CA), write
routes.cfg, models.map and models.json, and have the running HAProxy read them again (SIGUSR2: its
master starts new workers on the new files; requests in flight finish on the old ones)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.errors import AirpodsError
from airpods.kinds import kind_of
from airpods.stack.hub_reload import TRIES, reload

if TYPE_CHECKING:  # the probes (ssl, http.client) are imported when a hub is there to ask, not by every start
    from airpods.hosts.probe import Reading
    from airpods.plan.hub import Member
    from airpods.plan.hub_routes import Routes

RELOAD = "SIGUSR2"
HUB_REFRESH_EVERY = 60.0  # seconds: the project's watcher refreshes the routes this often (docs/hosts.md)


@dataclass(frozen=True)
class Refreshed:
    hub: str  # the hub service
    readings: dict[str, Reading]  # member id -> what its look found
    routes: Routes
    reloaded: bool  # the running hub was told to read them

    def summary(self) -> str:
        up = sum(1 for r in self.readings.values() if r.reachable)
        text = (f"{self.hub}: {len(self.routes.served)} models routed across {up} of {len(self.readings)} "
                f"members")
        down = [f"{m.removeprefix('host-').removeprefix('local-')} ({r.error})"
                for m, r in self.readings.items() if not r.reachable]
        return text + (f"; not answering: {', '.join(down)}" if down else "")


def hub_of(specs: dict[str, Any]) -> Any:
    """The enabled hub's spec, or None."""
    return next((s for s in specs.values() if s.enabled and kind_of(s.kind).model_router), None)


def hub_dir(stack: Any) -> Path:
    from airpods.paths import hub_dir as folder

    return folder(stack.environ, stack.project)


def routes_lock(stack: Any) -> Any:
    """One writer of the hub's routes at a time (outside etc/, which the hub mounts)."""
    from airpods.orchestrate.lock import HostLock

    return HostLock(hub_dir(stack) / "routes.lock")


def member_list(spec: Any) -> list[Member]:
    from airpods.plan.hub import Member

    return [Member(mid, title, "", None, ca="remote" if mid.startswith("host-") else "", relay=relay)
            for mid, title, relay in spec.hub_members]


def look_at(stack: Any, specs: dict[str, Any], member: Member) -> Reading:
    """One member's model list (a key goes only where it belongs: see the module's docstring)."""
    from airpods.hosts import probe
    from airpods.orchestrate.running import serving_base

    if member.remote:
        return look_host(stack, member.id.removeprefix("host-"))
    spec = specs[member.id.removeprefix("local-")]
    try:
        base = serving_base(stack.runtime, spec)
    except AirpodsError as exc:
        return probe.Reading(spec.url or "", False, error=exc.message)
    return probe.look_plain(base, spec.env.get("LLAMA_API_KEY"))


def look_host(stack: Any, name: str, timeout: float = 5.0) -> Reading:
    """A host of the config, asked with the CA and key stored here for it."""
    from airpods.hosts import probe, trust

    host = stack.config.hosts.get(name)
    key, ca = trust.key_of(stack.secrets(create=False), name), trust.ca_path(hub_dir(stack), name)
    if host is None:
        return probe.Reading("", False, error="not in this config")
    if not key or not ca.is_file():
        return probe.Reading(host.url, False, error=f"its key or CA is not stored: airpods hosts add {name} ...")
    return probe.look(host.url, str(ca), key, timeout)


def host_readings(stack: Any, timeout: float = 5.0) -> dict[str, Reading]:
    """Each host of the config, looked at now, in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    hosts = list(stack.config.hosts)
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        return dict(zip(hosts, pool.map(lambda n: look_host(stack, n, timeout), hosts), strict=True))


def host_row(name: str, r: Reading) -> dict[str, Any]:
    """`hosts list --json`'s row of a host."""
    import time

    def when(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {"name": name, "url": r.url, "reachable": r.reachable,
            "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1), "models": list(r.models),
            "tls_expires": when(r.tls_expires), "error": r.error or None}


def refresh(stack: Any, specs: dict[str, Any], *, only_if_changed: bool = False) -> Refreshed | None:
    """Routes from what the members say now; None without an enabled hub. `only_if_changed` (the
    watcher's periodic refresh): the running hub is told only when a file changed, since each
    reload starts new HAProxy workers whose health checks begin again."""
    from airpods.plan.hub import LISTING, MAP, ROUTES
    from airpods.plan.hub_routes import routes
    from airpods.secrets import write_atomic

    hub = hub_of(specs)
    if hub is None:
        return None
    members = member_list(hub)
    readings = {m.id: look_at(stack, specs, m) for m in members}
    found = routes(members, {m: list(r.models) for m, r in readings.items() if r.reachable})
    with routes_lock(stack):  # a start's refresh and `hosts refresh` at once: the three files of one
        etc = hub_dir(stack) / "etc"
        etc.mkdir(parents=True, exist_ok=True, mode=0o755)
        changed = False
        for name, text in ((ROUTES, found.config), (MAP, found.map), (LISTING, found.listing)):
            path = etc / name
            if not path.is_file() or path.read_text() != text:
                changed = True
                write_atomic(path, text, 0o644)  # read by HAProxy's user; no keys in them
        state = stack.runtime.inspect(hub.container)
        reloaded = bool(state and state.running) and (changed or not only_if_changed)
    if reloaded and not reload(stack.runtime, hub.container, RELOAD, started_at=state.started_at):
        raise AirpodsError(f"{hub.name} did not reload its routes: {TRIES} signals went unheard",
                           hint=f"airpods logs {hub.name}; airpods hosts refresh tries again")
    return Refreshed(hub.name, readings, found, reloaded)


def check_trust(stack: Any, specs: dict[str, Any], selected: list[str]) -> None:
    """Before a start that brings the hub up: every host's CA is stored (HAProxy refuses to run
    without one), else exit 2 naming the host and the fix; nothing is created."""
    hub = hub_of(specs)
    if hub is None or hub.name not in selected:
        return
    from airpods.errors import UsageError
    from airpods.hosts import trust

    missing = [h for h in stack.config.hosts if not trust.ca_path(hub_dir(stack), h).is_file()]
    if missing:
        raise UsageError(f"hosts.{missing[0]}: its CA is not stored on this machine; nothing was started",
                         hint=f"airpods hosts add {missing[0]} {stack.config.hosts[missing[0]].url} --ca FILE "
                              "(the file `airpods keys ca` writes on that host)")
    ensure_routes(stack)


def ensure_routes(stack: Any) -> None:
    """Routes for HAProxy to start with where none were written yet (no model routed until the
    first refresh); routes already there, a refresh's, are kept."""
    from airpods.plan.hub import EMPTY_LISTING, LISTING, MAP, ROUTES
    from airpods.secrets import write_atomic

    with routes_lock(stack):
        etc = hub_dir(stack) / "etc"
        etc.mkdir(parents=True, exist_ok=True, mode=0o755)
        for name, text in ((ROUTES, ""), (MAP, ""), (LISTING, EMPTY_LISTING)):
            if not (etc / name).is_file():
                write_atomic(etc / name, text, 0o644)


def after_start(stack: Any, specs: dict[str, Any], reporter: Any) -> None:
    """Once a start is done: the hub's routes from what now runs (said in one line)."""
    if hub_of(specs) is None:
        return
    try:
        done = refresh(stack, specs)
    except (AirpodsError, OSError) as exc:
        reporter.info(f"the hub's routes were not refreshed: {getattr(exc, 'message', exc)} "
                      "(airpods hosts refresh tries again)")
        return
    if done is not None:
        reporter.info(done.summary())

"""`airpods status`."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.kinds import kind_of


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


@click.command()
@click.argument("services", nargs=-1)
@click.option("--json", "as_json", is_flag=True,
              help=f"Print a JSON list ({contract.STATUS.help()}).")
@pass_app
def status(app: Application, services: tuple[str, ...], as_json: bool) -> None:
    """Show state, health, URL, image, uptime and served model of SERVICES.

    Default: every enabled service, plus every other container this config's project has in
    Podman: disabled services that still have one, and orphans (a service renamed or removed
    from the config; `airpods clean` removes them). Only this project's objects are listed.
    States: running, stopped, exited (crashed), absent. Health: healthy, starting, unhealthy,
    unknown (not running). A llama.cpp service is healthy only when its /health says the model
    is loaded. CPUS shows the CPU plan: the cpuset and llama.cpp threads of each service
    ("threads only" where the engine cannot pin, e.g. rootless Podman on cgroups v1).
    """
    from airpods.orchestrate.status import status as get_status

    specs, problem = app.stack.specs_or_none()
    if problem:  # what runs is found by its labels, as stop and logs find it; then exit 2
        _by_labels(app, problem, services, as_json)
        return
    running = app.stack.running()
    known = {r.service for r in running}
    if services:  # a name may also be an orphan's, known only from what runs
        app.stack.select(specs, tuple(n for n in services if n not in known))
        names = [n for n in dict.fromkeys(services) if n in specs]
    else:  # disabled services that still have their container are shown too
        names = app.stack.select(specs, ())
        names += [n for n, s in specs.items() if n not in names and any(r.matches(s) for r in running)]
    runtime = app.stack.runtime
    from airpods.orchestrate import stops
    from airpods.paths import stops_path

    rows = get_status(runtime, [specs[n] for n in names], running, all_specs=specs, names=list(services) or None,
                      stops=stops.stopped_at(stops_path(app.environ)))
    from airpods.health.supervisor import status_fields
    from airpods.orchestrate import failures
    from airpods.paths import failures_path, health_ledger

    ids = {r.state.name: r.state.id for r in running}
    for r in rows:
        # Recorded when a start failed and cleared by the next good start: shown even when a restart
        # policy has brought the container back since.
        if r.service in specs and not r.orphaned and r.state != "absent":
            r.last_failure = failures.current(failures_path(app.environ), r.service, specs[r.service].spec_hash)
            watched = status_fields(health_ledger(app.environ, specs[r.service].project), r.service,
                                    ids.get(r.container, ""))
            r.restarts = watched["restarts"]
            r.last_failure = r.last_failure or watched["last_failure"]
    gateways = {r.service: _ca_fingerprint(app, specs[r.service]) for r in rows
                if r.service in specs and kind_of(specs[r.service].kind).door and r.state != "absent"}
    hosts = _hosts(app, services)
    if as_json:
        app.terminal.print_json([*({**r.to_json(), **({"ca_fingerprint": gateways[r.service]}
                                                      if r.service in gateways else {})} for r in rows),
                                 *(_host_json(n, h) for n, h in hosts.items())], contract.STATUS)
        return
    _table(app, specs, rows, gateways)
    if hosts:
        app.terminal.table(["HOST", "REACHABLE", "LATENCY", "MODELS", "URL"], [
            [n, "yes" if h.reachable else f"no: {h.error}", "-" if h.latency_ms is None else f"{h.latency_ms:.0f} ms",
             ", ".join(h.models) or "-", h.url] for n, h in hosts.items()])


def _hosts(app: Application, services: tuple[str, ...]) -> dict:
    """The other hosts behind this gateway, looked at now (2 s at most, in parallel), when no
    service is named."""
    from airpods.stack.hub import host_readings

    return {} if services or not app.stack.config.hosts else host_readings(app.stack, timeout=2.0)


def _host_json(name: str, r) -> dict:
    """A host's row in `status --json`: the service keys (kind "host"), with its models and latency."""
    keys = {k: None for k in contract.STATUS.keys}
    return {**keys, "service": name, "kind": "host", "state": "reachable" if r.reachable else "unreachable",
            "health": "healthy" if r.reachable else "unhealthy", "url": r.url, "model": ", ".join(r.models) or None,
            "wired_to": [], "outdated": False, "plan_differs": False, "orphaned": None, "restarts": 0, "gpus": [],
            "last_failure": {"reason": r.error} if r.error else None, "models": list(r.models),
            "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1)}


def _table(app: Application, specs: dict, rows: list, gateways: dict) -> None:
    """The status table, and how to trust each gateway's CA."""
    table = []
    for r in rows:
        state = r.state + (f" ({r.exit_code})" if r.state == "exited" else "")
        if r.restarts:
            state += f", {r.restarts} restart{'s' if r.restarts != 1 else ''}"
        if r.last_failure:
            state += f" ({r.last_failure['reason']})"
        extra = r.model or (("-> " + ", ".join(r.wired_to)) if r.wired_to else "")
        if r.orphaned:
            extra += f" [orphaned: {r.orphaned}; airpods clean removes it]"
        if r.outdated and r.state == "running":
            extra += " [config changed: airpods start recreates it]"
        if r.plan_differs and r.state == "running":
            extra += " [plan differs (CPU/GPU probes changed): airpods start --recreate applies it]"
        if r.memory_limit and r.memory_limit_enforced is False:
            extra += f" [memory limit {r.memory_limit} advisory: not enforced here]"
        table.append([r.service, state, r.health, r.url or "-", _uptime(r.uptime), _cpus(r), extra or "-",
                      r.image])
    columns = ["SERVICE", "STATE", "HEALTH", "URL", "UP", "CPUS", "MODEL / WIRED TO", "IMAGE"]
    if any(r.gpu_text for r in rows):  # the GPU plan: "GPU 0 · 31/40 layers"
        columns.insert(6, "GPUS")
        for r, line in zip(rows, table, strict=True):
            line.insert(6, r.gpu_text or "-")
    if any(r.pod and r.pod != r.service for r in rows):  # a project's prefixed names: the real ones
        columns.insert(1, "POD / CONTAINER")
        for r, line in zip(rows, table, strict=True):
            line.insert(1, f"{r.pod or '-'} / {r.container or '-'}")
    app.terminal.table(columns, table)
    for name, fp in gateways.items():
        app.terminal.info(f"gateway {specs[name].url}: " + (f"CA SHA-256 {fp}; clients trust it with "
                          "airpods keys ca -o airpods-ca.pem" if fp else "its own certificate, or no CA made yet")
                          + "; keys: airpods keys list")


def _by_labels(app: Application, problem: str, services: tuple[str, ...], as_json: bool) -> None:
    """The config does not load: say so first, then show what this project runs (from the sealed
    labels of its containers: no plan to compare with), and exit 2."""
    import time

    from airpods.errors import ConfigError
    from airpods.health.supervisor import status_fields
    from airpods.paths import health_ledger

    app.terminal.warning(f"{problem}; showing what project '{app.stack.project}' runs, found by its labels")
    rows = []
    for r in app.stack.running():
        if r.state.infra or (services and r.service not in services):
            continue
        watched = status_fields(health_ledger(app.environ, app.stack.project), r.service, r.state.id)
        rows.append({"service": r.service, "state": r.state.state, "health": r.state.health or "unknown",
                     "url": r.url, "image": r.state.image, "pod": r.pod, "container": r.state.name,
                     "model": r.model, "project": r.project, "restarts": watched["restarts"],
                     "last_failure": watched["last_failure"],
                     "uptime": time.time() - r.state.started_at if r.state.running and r.state.started_at else None})
    if as_json:
        app.terminal.print_json([{k: v for k, v in row.items() if k != "uptime"} for row in rows],
                                contract.STATUS_BY_LABELS)
    elif rows:
        app.terminal.table(["SERVICE", "STATE", "HEALTH", "URL", "UP", "MODEL", "IMAGE"],
                           [[x["service"], x["state"] + (f", {x['restarts']} restarts" if x["restarts"] else ""),
                             x["health"], x["url"] or "-", _uptime(x["uptime"]), x["model"] or "-", x["image"]]
                            for x in rows])
    else:
        app.terminal.info(f"nothing of project '{app.stack.project}' is in Podman")
    raise ConfigError("the config does not load, so only what runs is shown (above), not the plan",
                      hint="fix the config as the warning says; airpods config validate checks it")


def _ca_fingerprint(app: Application, spec) -> str | None:
    """The gateway's local CA fingerprint; None with the user's own certificate or before its first start."""
    from airpods.errors import AirpodsError
    from airpods.gateway.ca import fingerprint
    from airpods.stack.targets import read_ca

    try:
        return fingerprint(read_ca(app.stack, spec))
    except (AirpodsError, ValueError):
        return None


def _cpus(r) -> str:
    """'0-1 ×2' (cpuset, threads); 'threads only' when the engine cannot pin."""
    if r.cpuset is None and r.threads is None:
        return "-"
    text = r.cpuset or "any"
    if r.threads:
        text += f" ×{r.threads}"
    if r.cpuset_enforced is False:
        text += " (threads only)"
    return text

"""`airpods status`."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app


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
              help="Print a JSON list (keys: service, state, health, url, image, pod, container, model, "
                   "cpuset, threads, cpu_plan).")
@pass_app
def status(app: Application, services: tuple[str, ...], as_json: bool) -> None:
    """Show state, health, URL, image, uptime and served model of SERVICES.

    Default: every enabled service, plus disabled ones that still have a container.
    States: running, stopped, exited (crashed), absent. Health: healthy, starting, unhealthy,
    unknown (not running). A llama.cpp service is healthy only when its /health says the model
    is loaded. CPUS shows the CPU plan: the cpuset and llama.cpp threads of each service
    ("threads only" where the engine cannot pin, e.g. rootless Podman on cgroups v1).
    """
    from airpods.orchestrate.status import status as get_status

    specs = app.specs(create_secrets=False)
    names = app.select(specs, services)
    runtime = app.runtime
    managed = runtime.list_managed()
    if not services:  # disabled services that still have a container are shown too
        names = app.with_containers(specs, names, managed)
    rows = get_status(runtime, [specs[n] for n in names], managed)
    from airpods.orchestrate import failures
    from airpods.paths import failures_path

    for r in rows:
        if r.state != "running":
            r.last_failure = failures.current(failures_path(app.environ), r.service, specs[r.service].spec_hash)
    if as_json:
        app.terminal.print_json([r.to_json() for r in rows])
        return
    table = []
    for r in rows:
        state = r.state + (f" ({r.exit_code})" if r.state == "exited" else "")
        if r.last_failure:
            state += f" ({r.last_failure['reason']})"
        extra = r.model or (("-> " + ", ".join(r.wired_to)) if r.wired_to else "")
        if r.outdated and r.state == "running":
            extra += " [config changed: airpods start recreates it]"
        if r.memory_limit and r.memory_limit_enforced is False:
            extra += f" [memory limit {r.memory_limit} advisory: not enforced here]"
        table.append([r.service, state, r.health, r.url or "-", _uptime(r.uptime), _cpus(r), extra or "-",
                      r.image])
    app.terminal.table(["SERVICE", "STATE", "HEALTH", "URL", "UP", "CPUS", "MODEL / WIRED TO", "IMAGE"], table)


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

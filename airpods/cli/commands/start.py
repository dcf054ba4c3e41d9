"""`airpods start`."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app
from airpods.kinds import kind_of


@click.command()
@click.argument("services", nargs=-1)
@click.option("--pre-fetch", is_flag=True, help="Only pull the images (for this machine's GPU) and start nothing.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Health wait per service (default: services.<name>.health.timeout).")
@click.option("--no-wait", is_flag=True, help="Start and return without waiting for health.")
@click.option("--cpu", is_flag=True, help="Use CPU images and no GPU devices, whatever is detected.")
@click.option("--force", is_flag=True,
              help="Start a llama.cpp service even when its memory estimate exceeds what it may use (warns).")
@click.option("--recreate", is_flag=True,
              help="Also recreate running containers whose plan differs from this machine's probes now "
                   "(CPU affinity or quota, GPU state); without it only a changed config recreates.")
@pass_app
def start(app: Application, services: tuple[str, ...], pre_fetch: bool, timeout: float | None,
          no_wait: bool, cpu: bool, force: bool, recreate: bool) -> None:
    """Start SERVICES (default: every enabled service) and wait until they are healthy.

    \b
    Dependencies start first; independent services start in parallel. For each service airpods
    ensures the network, volumes and a pod with its aliases and ports (127.0.0.1 unless
    configured), creates the container, and watches it: connection refused (starting) ->
    HTTP 503 (loading) -> healthy. A container that exits fails the start at once with its log.
    Unchanged and running: nothing is touched. Changed config: the container is recreated
    (volumes are kept). A change of the machine alone (CPU affinity, a cgroup quota, GPU driver
    state) does not recreate a running model: `status` says the plan differs, and
    `start --recreate` applies it. Pods of another config (project) are never touched.

    \b
    Before creating anything, each llama.cpp service's memory estimate (weights + KV cache +
    compute, from the GGUF header and its ctx/slots/cache types) is compared with what it may
    use: resources.memory, else runtime.memory_budget minus the llama.cpp services running.
    Over budget: exit 2 with the numbers and the ctx_size that fits (--force: warn only).

    \b
    Examples:
      airpods start llamacpp
      airpods start --pre-fetch          # pull images with progress, start nothing
      airpods start open-webui --timeout 600
    """
    specs = app.stack.specs(force_cpu=cpu)
    selected = app.stack.select(specs, services)
    t = app.terminal
    if not selected:
        t.warning("no service is enabled; name one (airpods start llamacpp) or enable it in the config")
        return
    _gpu_warnings(app, specs, selected)
    runtime = app.stack.runtime
    if pre_fetch:
        _pre_fetch(app, runtime, [specs[n] for n in selected])
        return
    from airpods.errors import ServiceExited, StartFailure
    from airpods.orchestrate import failures
    from airpods.paths import failures_path

    try:
        outcomes = start_live(app, specs, selected, timeout, no_wait, force, recreate)
    except StartFailure as exc:  # remember an out-of-memory kill for `status`
        for e in [exc, *exc.causes]:
            if isinstance(e, ServiceExited) and e.out_of_memory:
                failures.record(failures_path(app.environ), e.service, specs[e.service].spec_hash,
                                "out of memory", [e.message, *e.details[:2]])
        raise
    failures.clear(failures_path(app.environ), [o.service for o in outcomes])
    rows = [[o.service, o.health or o.state, o.url or "-",
             "-" if o.seconds is None else f"{o.seconds:.1f}s"] for o in outcomes]
    t.table(["SERVICE", "STATE", "URL", "READY IN"], rows)
    from airpods.secrets import WEBUI_ADMIN_SECRET, api_key_name

    for o in outcomes:
        key_file = app.stack.secrets().path(api_key_name(o.service))
        if kind_of(specs[o.service].kind).llama_server and key_file.exists():  # not for a literal api_key
            t.info(f"{o.service}: API key in {key_file}")
        admin = specs[o.service].env.get("WEBUI_ADMIN_EMAIL")
        if kind_of(specs[o.service].kind).chat_ui and admin:  # made by airpods: no sign-up from outside
            t.info(f"{o.service}: sign in as {admin}, password in {app.stack.secrets().path(WEBUI_ADMIN_SECRET)} "
                   "(sign-up is off: add people in its admin panel)")


def start_live(app: Application, specs: dict, selected: list[str], timeout: float | None, no_wait: bool,
           force: bool, recreate: bool = False) -> list:
    from airpods.cli.live import LiveReporter
    from airpods.orchestrate import stops
    from airpods.orchestrate.lock import HostLock
    from airpods.orchestrate.start import start as start_services
    from airpods.orchestrate.start import start_order
    from airpods.paths import lock_path, stops_path

    runtime, t = app.stack.runtime, app.terminal
    with LiveReporter(t) as reporter:
        settings = app.stack.runtime_settings
        lock = HostLock(lock_path(app.environ),
                        on_wait=lambda: reporter.info("waiting for another airpods start to finish creating"))
        network = next(iter(specs.values())).network if specs else settings["network"]  # the specs': one network
        # Dependencies start too: every checked service this start may touch is held while it works,
        # and those it (re)started get a new count after it. The watcher is there before anything
        # starts (a crash loop after --no-wait is counted from its first exit; a start killed
        # midway leaves it watched, and its hold ends with its process).
        watched = [n for wave in start_order(specs, selected) for n in wave if specs[n].health.check]
        before, after, outcomes = {n: runtime.inspect(specs[n].container) for n in watched}, {}, []
        if watched:
            _hold(app, specs[watched[0]].project, watched)
            if getattr(runtime, "shared", False):
                from airpods.cli.commands.watch import spawn

                spawn(app, specs[watched[0]].project)
        released: set[str] = set()

        def release(service: str, container_id: str) -> None:
            if service in watched:
                _release(app, specs[service].project, service, container_id)
                released.add(service)

        try:
            outcomes = start_services(runtime, specs, selected, reporter, network=network,
                                      models_volume=settings["models_volume"], timeout=timeout,
                                      wait=not no_wait, lock=lock, memory_check=memory_checker(app, specs, force),
                                      recreate=recreate, stops=lambda: stops.stopped_at(stops_path(app.environ)),
                                      released=release)
        finally:
            if watched:
                after = {n: runtime.inspect(specs[n].container) for n in watched if n not in released}
                _new_chance(app, specs[watched[0]].project, after, before, {o.service for o in outcomes})
    return outcomes


def _hold(app: Application, project: str, services: list[str]) -> None:
    """Before a start: a watcher still running keeps its hands off these services meanwhile."""
    import os
    import time

    from airpods.health.supervisor import Ledger, hold
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(app.environ, project)) as ledger:
        hold(ledger, services, time.time(), holder=os.getpid())


def _release(app: Application, project: str, service: str, container_id: str) -> None:
    """Just before an unwaited start (--no-wait): the watcher counts this container's restarts
    from Podman's 0 on, and may stop it, from its first exit (a crash loop is ~10 a second)."""
    from airpods.health.supervisor import Ledger, Record
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(app.environ, project)) as ledger:
        ledger.records[service] = Record(container_id)


def _new_chance(app: Application, project: str, after: dict, before: dict, done: set[str]) -> None:
    """After a start: those it (re)started end a row of restarts (a service the watcher stopped)
    and are counted from here (from Podman's 0, for those it started and did not fail: `done`);
    the others are the watcher's again, as they were."""
    from airpods.health.supervisor import Ledger, forget
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(app.environ, project)) as ledger:
        started = {n: s for n, s in after.items()
                   if s is None or before.get(n) is None or s.id != before[n].id
                   or s.started_at != before[n].started_at}
        forget(ledger, started, {n for n in started if n in done})
        for name in set(after) - set(started):
            if name in ledger.records:
                ledger.records[name].hold_until = 0.0


def memory_checker(app: Application, specs: dict, force: bool):
    """The memory preflight for orchestrate.start, bound to this machine's probes."""
    from airpods.orchestrate.memory_check import check_memory
    from airpods.probes.memory import free_vram

    settings, mem = app.stack.runtime_settings, app.stack.memory_info
    path = app.environ.get("PATH", "")

    def check(todo: list) -> tuple[dict, list[str]]:
        reports, warnings = check_memory(app.stack.runtime, specs, todo, models_volume=settings["models_volume"],
                                         budget_setting=settings.get("memory_budget", "auto"),
                                         memory_total=mem.total, memory_source=mem.source, force=force,
                                         vram_for=lambda variant: free_vram(variant, path), kept=app.stack.facts_cache)
        planned = [s for s in todo if s.vram]
        if not planned:
            return reports, warnings
        from airpods.orchestrate.vram_check import check_vram

        running = [s for s in planned
                   if (state := app.stack.runtime.inspect(s.container)) is not None and state.running]
        return reports, warnings + check_vram(planned, app.stack.gpu_inventory, force=force, released=running)

    return check


def _gpu_warnings(app: Application, specs: dict, selected: list[str]) -> None:
    """A GPU that is present but will not be used is said out loud, once per message."""
    for message in dict.fromkeys(w for name in selected for w in specs[name].gpu_warnings):
        app.terminal.warning(message)


def _pre_fetch(app: Application, runtime: object, specs: list) -> None:
    from airpods.cli.live import LiveReporter
    from airpods.errors import RuntimeFailure
    from airpods.orchestrate.pull import pull_all

    t = app.terminal
    present = [s for s in specs if runtime.image_exists(s.image)]  # type: ignore[attr-defined]
    for s in present:
        t.success(f"{s.name}: {s.image} already present")
    missing = [s for s in specs if s not in present]
    if not missing:
        return
    with LiveReporter(t) as reporter:
        failures = pull_all(runtime, missing, reporter)
    for s in missing:
        if not any(s.image in f for f in failures):
            t.success(f"{s.name}: pulled {s.image} ({s.variant})")
    if failures:
        raise RuntimeFailure(f"{len(failures)} image(s) could not be pulled", details=failures,
                             hint="check the registry is reachable (or proxy settings), then run again")

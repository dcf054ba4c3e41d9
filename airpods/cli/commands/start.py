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
    from airpods.cli.live import LiveReporter
    from airpods.errors import StartFailure
    from airpods.stack.start import StartOptions, forget_failures, remember_failures

    try:
        with LiveReporter(t) as reporter:
            outcomes = app.stack.start(specs, selected, StartOptions(timeout, not no_wait, force, recreate), reporter)
    except StartFailure as exc:  # remember an out-of-memory kill for `status`
        remember_failures(app.stack, specs, exc)
        raise
    forget_failures(app.stack, outcomes)
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

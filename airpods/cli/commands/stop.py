"""`airpods stop`."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app


def record_stops(app: Application, found: list) -> None:
    """Remember that airpods stops these containers (a SIGKILL it sends is no crash)."""
    from airpods.orchestrate import stops
    from airpods.paths import stops_path

    stops.record(stops_path(app.environ), [t.container for t in found if t.container])


def report_stopped(app: Application, results: list) -> None:
    if not results:
        app.terminal.info(f"nothing to stop in project '{app.stack.project}'")
    for r in results:
        note = f" [{r.note}]" if r.note else ""
        if r.result in ("stopped", "removed"):
            app.terminal.success(f"{r.service}: {r.result} ({r.seconds:.1f}s){note}")
        else:
            app.terminal.info(f"{r.service}: {r.result}{note}")


@click.command()
@click.argument("services", nargs=-1)
@click.option("--remove", is_flag=True, help="Also remove the pods and containers (never the volumes).")
@click.option("--timeout", type=click.IntRange(min=0), metavar="SECONDS",
              help="Seconds between SIGTERM and SIGKILL (default: runtime.stop_timeout).")
@pass_app
def stop(app: Application, services: tuple[str, ...], remove: bool, timeout: int | None) -> None:
    """Stop SERVICES (default: everything this config's project runs), dependents first.

    What runs is found in Podman by its labels, so a service renamed or removed from the config
    (an orphan) is stopped too, and stop works even when the config no longer validates. Only
    this project's objects are touched: another config's pods with the same names are not.
    Volumes (models, chat history) are always kept. Stopping something that is not running is
    not an error.

    \b
    Examples:
      airpods stop                 # everything
      airpods stop llamacpp --remove
    """
    from airpods.orchestrate.stop import stop as stop_services
    from airpods.orchestrate.stop import targets

    specs, problem = app.stack.specs_or_none()
    if problem:
        app.terminal.warning(f"{problem}; stopping what project '{app.stack.project}' runs, found by its labels")
    found = targets(app.stack.runtime, app.stack.project, app.stack.running(), specs, list(services) or None)
    record_stops(app, found)
    report_stopped(app, stop_services(app.stack.runtime, found, timeout=timeout, remove=remove,
                                      services=list(services)))

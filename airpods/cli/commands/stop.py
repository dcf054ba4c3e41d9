"""`airpods stop`."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app
from airpods.cli.render import report_stopped
from airpods.stack.stop import record_stops


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
    record_stops(app.stack, found)
    report_stopped(app, stop_services(app.stack.runtime, found, timeout=timeout, remove=remove,
                                      services=list(services)))

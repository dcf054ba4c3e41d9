"""`airpods stop`."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app


@click.command()
@click.argument("services", nargs=-1)
@click.option("--remove", is_flag=True, help="Also remove the pods and containers (never the volumes).")
@click.option("--timeout", type=click.IntRange(min=0), metavar="SECONDS",
              help="Seconds between SIGTERM and SIGKILL (default: runtime.stop_timeout).")
@pass_app
def stop(app: Application, services: tuple[str, ...], remove: bool, timeout: int | None) -> None:
    """Stop SERVICES (default: every service in the config), dependents first.

    Volumes (models, chat history) are always kept. Stopping something that is not running is
    not an error.

    \b
    Examples:
      airpods stop                 # everything
      airpods stop llamacpp --remove
    """
    from airpods.orchestrate.stop import stop as stop_services

    specs = app.specs(create_secrets=False)
    selected = app.select(specs, services, enabled_only=False)
    results = stop_services(app.runtime, specs, selected, timeout=timeout, remove=remove)
    for r in results:
        if r.result in ("stopped", "removed"):
            app.terminal.success(f"{r.service}: {r.result} ({r.seconds:.1f}s)")
        else:
            app.terminal.info(f"{r.service}: {r.result}")

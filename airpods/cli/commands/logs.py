"""`airpods logs`."""

from __future__ import annotations

import sys

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError
from airpods.kinds import kind_of


@click.command()
@click.argument("service")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--tail", "lines", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many of the last lines to show (0: all).")
@pass_app
def logs(app: Application, service: str, follow: bool, lines: int) -> None:
    """Print the last lines of SERVICE's container log (stdout and stderr), or follow it.

    \b
    Examples:
      airpods logs llamacpp -n 50
      airpods logs -f open-webui
    """
    specs, _ = app.stack.specs_or_none()  # what runs is found by label, so a broken config still has logs
    mine = [r for r in app.stack.running() if r.service == service]
    if not mine:
        if specs is not None:
            app.stack.select(specs, (service,))  # an unknown name: say so, with a suggestion
        raise UsageError(f"service '{service}' has no container in project '{app.stack.project}' (it was never "
                         "started or was removed)", hint=f"start it: airpods start {service}")
    spec = (specs or {}).get(service)
    container = next((r.container for r in mine if spec is not None and r.matches(spec)), mine[0].container)
    from airpods.cli.terminal import is_tty, printable

    runtime = app.stack.runtime
    out = sys.stdout
    tty = is_tty(out)  # a log is the server's bytes: on a terminal, its text without escapes
    kind = next((r.kind for r in mine if r.container == container), None)
    if kind_of(kind).door:  # Caddy's JSON access entries as one line each: time, key owner, request, status
        from airpods.gateway.access import readable
    else:
        def readable(line: str) -> str:
            return line
    try:
        for line in runtime.logs(container, tail=lines or None, follow=follow):
            text = readable(line)
            out.write((printable(text) if tty else text) + "\n")
            if follow:
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        out.flush()

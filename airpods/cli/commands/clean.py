"""`airpods clean`: the one command that may delete volumes, and only when asked and confirmed."""

from __future__ import annotations

import sys

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


@click.command()
@click.argument("services", nargs=-1)
@click.option("--volumes", is_flag=True, help="Also delete the services' named volumes (models, chat history).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def clean(app: Application, services: tuple[str, ...], volumes: bool, yes: bool) -> None:
    """Stop and remove the pods and containers of SERVICES (default: the enabled services and any
    other service that still has a container, as `airpods status` lists them).

    With --volumes, also delete their named volumes, after listing them and asking (or --yes).
    A volume shared by several services (the llama.cpp model volume) is deleted only when every
    service that uses it is being cleaned.

    \b
    Examples:
      airpods clean                       # pods and containers only; data stays
      airpods clean open-webui --volumes  # forget Open WebUI's users and chats
    """
    from airpods.orchestrate.stop import stop as stop_services

    specs = app.specs(create_secrets=False)
    selected = app.select(specs, services)
    runtime = app.runtime
    if not services:  # a disabled service's data is only touched when it still has a container
        selected = app.with_containers(specs, selected, runtime.list_managed())
    doomed: dict[str, list[str]] = {}
    kept: dict[str, list[str]] = {}
    if volumes:
        for name in selected:
            for volume in specs[name].volumes:
                if volume.is_named:
                    doomed.setdefault(volume.source, []).append(name)
        for volume in list(doomed):
            users = [n for n, s in specs.items() if any(v.source == volume for v in s.volumes)]
            outside = [u for u in users if u not in selected]
            if outside:
                kept[volume] = outside
                del doomed[volume]
        doomed = {v: users for v, users in doomed.items() if runtime.volume_exists(v)}
    if doomed and not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete volumes without confirmation",
                             details=[f"{v} (used by {', '.join(u)})" for v, u in doomed.items()],
                             hint="pass --yes to delete them")
        app.terminal.warning("these volumes and everything in them will be deleted:")
        for volume, users in doomed.items():
            app.terminal.detail(f"{volume} (used by {', '.join(users)})")
        click.confirm("Delete them?", abort=True, err=True)
    for result in stop_services(runtime, specs, selected, timeout=None, remove=True):
        app.terminal.info(f"{result.service}: {result.result}")
    for volume in doomed:
        if runtime.remove_volume(volume):
            app.terminal.success(f"deleted volume {volume}")
    for volume, users in kept.items():
        app.terminal.info(f"kept volume {volume}: also used by {', '.join(users)}")

"""`airpods clean`: the one command that may delete volumes, and only when asked and confirmed."""

from __future__ import annotations

import sys

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


def _volume_users(specs: dict | None, running: list) -> dict[str, set[str]]:
    """volume -> the services (in the config or running in this project) that mount it."""
    users: dict[str, set[str]] = {}
    for name, spec in (specs or {}).items():
        for v in spec.volumes:
            if v.is_named:
                users.setdefault(v.source, set()).add(name)
    for r in running:
        for v in r.volumes:
            users.setdefault(v, set()).add(r.service)
    return users


@click.command()
@click.argument("services", nargs=-1)
@click.option("--volumes", is_flag=True, help="Also delete the services' named volumes (models, chat history).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def clean(app: Application, services: tuple[str, ...], volumes: bool, yes: bool) -> None:
    """Stop and remove the pods and containers of SERVICES (default: everything this config's
    project has in Podman, orphans included, as `airpods status` lists them).

    With --volumes, also delete their named volumes, after listing them and asking (or --yes).
    A volume shared by several services (the llama.cpp model volume) is deleted only when every
    service that uses it is being cleaned; a volume airpods did not create for this project is
    never deleted. Works when the config no longer validates (objects are found by label).

    \b
    Examples:
      airpods clean                       # pods and containers only; data stays
      airpods clean open-webui --volumes  # forget Open WebUI's users and chats
    """
    from airpods.cli.render import report_stopped
    from airpods.orchestrate.running import owned_by
    from airpods.orchestrate.stop import stop as stop_services
    from airpods.orchestrate.stop import targets
    from airpods.stack.stop import record_stops

    specs, problem = app.stack.specs_or_none()
    if problem:
        app.terminal.warning(f"{problem}; cleaning what project '{app.stack.project}' has, found by its labels")
    runtime = app.stack.runtime
    running = app.stack.running()
    found = targets(runtime, app.stack.project, running, specs, list(services) or None)
    # No names: the enabled services and everything this project has in Podman.
    selected = set(services) or ({n for n, s in (specs or {}).items() if s.enabled} | {t.service for t in found})
    doomed: dict[str, list[str]] = {}
    kept: dict[str, str] = {}
    if volumes:
        for volume, users in sorted(_volume_users(specs, running).items()):
            if not users & selected:
                continue
            outside = sorted(users - selected)
            labels = runtime.volume_labels(volume)
            if outside:
                kept[volume] = f"also used by {', '.join(outside)}"
            elif labels is None:
                continue  # does not exist
            elif not owned_by(labels, app.stack.project):
                kept[volume] = "not created by airpods for this project"
            else:
                doomed[volume] = sorted(users)
    if doomed and not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete volumes without confirmation",
                             details=[f"{v} (used by {', '.join(u)})" for v, u in doomed.items()],
                             hint="pass --yes to delete them")
        app.terminal.warning("these volumes and everything in them will be deleted:")
        for volume, users in doomed.items():
            app.terminal.detail(f"{volume} (used by {', '.join(users)})")
        click.confirm("Delete them?", abort=True, err=True)
    record_stops(app.stack, found)
    report_stopped(app, stop_services(runtime, found, timeout=None, remove=True, services=list(services)))
    for volume in doomed:
        if runtime.remove_volume(volume):
            app.terminal.success(f"deleted volume {volume}")
    for volume, why in kept.items():
        app.terminal.info(f"kept volume {volume}: {why}")

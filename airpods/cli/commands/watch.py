"""`airpods watch`: the per-project health watcher `start` leaves running (not for people)."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app


@click.command(hidden=True)
@click.option("--project", required=True, help="The project whose services are watched.")
@click.option("--tick", type=click.FloatRange(min=0.1), default=0.5, show_default=True,
              help="Seconds between looks.")
@pass_app
def watch(app: Application, project: str, tick: float) -> None:
    """Watch a project's services after `airpods start`: run their health checks where Podman's
    systemd timers cannot, count restarts (`airpods status`), and stop a service after
    health.max_restarts restarts in a row. One per project; it ends when they are all stopped."""
    import fcntl
    import os
    import time

    from airpods.health.supervisor import watch as watch_loop
    from airpods.health.supervisor import watched
    from airpods.orchestrate import stops
    from airpods.paths import health_ledger, private_folder, stops_path
    from airpods.probes.systemd import timers_available

    ledger = health_ledger(app.environ, project)
    private_folder(ledger.parent)
    stamp = lambda text: print(time.strftime("%Y-%m-%dT%H:%M:%S"), text, flush=True)  # noqa: E731
    run_checks = not timers_available(app.environ, os.geteuid())
    with open(ledger.with_suffix(".pid"), "a+") as pid:
        # A watcher that is just ending lets go of the lock and looks once more; this one waits a
        # little for it, so that a start racing with that end is never left without a watcher.
        while _take(pid, tries=8):
            pid.seek(0)
            pid.truncate()
            pid.write(f"{os.getpid()}\n")
            pid.flush()
            stamp(f"watching project {project} ({'running the checks' if run_checks else 'systemd runs the checks'})")
            # Ends after 30 s with nothing running, stopping or restarting: a restart is never that
            # long between "exited" and "running" (a frozen process sits out its stop timeout as
            # "stopping").
            watch_loop(app.runtime, project, ledger, run_checks=run_checks, tick=tick, say=stamp,
                       idle_ticks=int(30 / tick), stopped=lambda name: stops.record(stops_path(app.environ), [name]),
                       key_of=_probe_keys(app))
            fcntl.flock(pid, fcntl.LOCK_UN)
            if not any(s.running for _, s, _ in watched(app.runtime.list_managed(), project)):
                stamp("nothing of the project runs: done")
                return
            stamp("the project runs again")


def _probe_keys(app: Application):
    """service -> its probe key, from airpods' own secrets folder (None where it has none)."""
    from airpods.errors import ConfigError
    from airpods.secrets import health_key_name

    store = app.secrets(create=False)

    def key_of(service: str) -> str | None:
        try:
            return store.read(health_key_name(service))
        except (ValueError, ConfigError):  # not a name a secret can have, or a file that is not one
            return None

    return key_of


def _take(lock, tries: int) -> bool:
    import fcntl
    import time

    for _ in range(tries):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            time.sleep(0.5)
    return False  # another watcher has this project


def spawn(app: Application, project: str) -> None:
    """Leave a watcher running for the project (it exits at once if one already is)."""
    import os
    import subprocess
    import sys

    from airpods.paths import health_ledger, private_folder

    log = health_ledger(app.environ, project).with_suffix(".log")
    private_folder(log.parent)
    argv = [sys.executable, "-m", "airpods"]
    if app.config_path:
        argv += ["--config", app.config_path]
    if app.url:
        argv += ["--url", app.url]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a log from before was 0644
    with os.fdopen(fd, "a") as out:
        subprocess.Popen([*argv, "watch", "--project", project], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=app.environ)

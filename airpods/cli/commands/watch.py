"""`airpods watch`: the per-project health watcher `start` leaves running (not for people)."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app


@click.command(hidden=True)
@click.option("--project", required=True, help="The project whose services are watched.")
@pass_app
def watch(app: Application, project: str) -> None:
    """Watch a project's services after `airpods start`: run their health checks where Podman's
    systemd timers cannot, count restarts (`airpods status`), and stop a service after
    health.max_restarts restarts in a row. It waits on Podman's event stream and sleeps between
    checks. One per project; it ends when they are all stopped."""
    import fcntl
    import os
    from datetime import datetime

    from airpods.health.feed import EventFeed
    from airpods.health.supervisor import watched
    from airpods.health.watcher import watch as watch_loop
    from airpods.orchestrate import stops
    from airpods.paths import health_ledger, private_folder, stops_path
    from airpods.probes.systemd import timers_available
    from airpods.stack.watcher import take

    ledger = health_ledger(app.environ, project)
    private_folder(ledger.parent)
    stamp = lambda text: print(datetime.now().isoformat(timespec="milliseconds"), text, flush=True)  # noqa: E731
    run_checks = not timers_available(app.environ, os.geteuid())
    feed = None
    with open(ledger.with_suffix(".pid"), "a+") as pid:
        # A watcher that is just ending lets go of the lock and looks once more; this one waits a
        # little for it, so that a start racing with that end is never left without a watcher.
        while take(pid, tries=8):
            pid.seek(0)
            pid.truncate()
            pid.write(f"{os.getpid()}\n")
            pid.flush()
            if feed is None:  # this project's watcher: from here on Podman tells it what happens
                feed = EventFeed(app.stack.runtime, project, say=stamp).start()
                report = _reporter(ledger.with_suffix(".state.json"), feed)
            stamp(f"watching project {project} ({'running the checks' if run_checks else 'systemd runs the checks'})")
            # Ends after 30 s with nothing running, stopping or restarting, nor held by a start at
            # work: a restart is never that long between "exited" and "running" (a frozen process
            # sits out its stop timeout as "stopping").
            watch_loop(app.stack.runtime, project, ledger, run_checks=run_checks, wait=feed.wait, say=stamp,
                       idle_for=30.0, stopped=lambda name: stops.record(stops_path(app.environ), [name]),
                       key_of=_probe_keys(app), report=report, subscribe=feed.subscribe,
                       chore=_hub_refresh(app, stamp))
            fcntl.flock(pid, fcntl.LOCK_UN)
            if not any(s.running for _, s, _ in watched(app.stack.runtime.list_managed(), project)) \
                    and not _held(ledger):
                stamp("nothing of the project runs: done")
                return
            stamp("the project runs again")


def _hub_refresh(app: Application, say):
    """With an enabled hub: its routes refreshed every HUB_REFRESH_EVERY seconds from what the
    members serve now (a model a host adds is routed within that), the hub told only of a change."""
    from airpods.errors import AirpodsError
    from airpods.stack.hub import HUB_REFRESH_EVERY, hub_of, refresh

    try:
        if hub_of(app.stack.specs(create_secrets=False)) is None:
            return None
    except AirpodsError:
        return None

    def job() -> None:
        done = refresh(app.stack, app.stack.specs(create_secrets=False), only_if_changed=True)
        if done is not None and done.reloaded:
            say(f"the hub's routes changed: {done.summary()}")

    return (HUB_REFRESH_EVERY, "a refresh of the hub's routes", job)


def _held(ledger) -> bool:
    """A live start holds one of the project's services (it began just as this watcher ended)."""
    import time

    from airpods.health.supervisor import Ledger, live_holds

    with Ledger.locked(ledger) as records:
        return bool(live_holds(records, time.time()))


def _reporter(path, feed):
    """What `airpods doctor` reads of this watcher: its CPU time over the last minutes (samples
    at each look), what it waits for next, and how many events it had (written 0600)."""
    import json
    import os
    import time

    samples: list[tuple[float, float]] = []

    def report(when: float, what: str) -> None:
        now = time.time()
        samples.append((now, time.process_time()))
        while len(samples) > 2 and samples[1][0] < now - 300:  # keep one older than 5 min at most
            samples.pop(0)
        data = {"pid": os.getpid(), "next": {"at": when, "what": what}, "cpu_samples": samples,
                "events": feed.events, "reconnects": feed.reconnects}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)

    return report


def _probe_keys(app: Application):
    """service -> its probe key, from airpods' own secrets folder (None where it has none)."""
    from airpods.errors import ConfigError
    from airpods.secrets import health_key_name

    store = app.stack.secrets(create=False)

    def key_of(service: str) -> str | None:
        try:
            return store.read(health_key_name(service))
        except (ValueError, ConfigError):  # not a name a secret can have, or a file that is not one
            return None

    return key_of

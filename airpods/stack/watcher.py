"""The project's health watcher as a start leaves it: one process per project (`airpods watch`,
airpods/cli/commands/watch.py), found by the lock on its pid file."""

from __future__ import annotations

from typing import Any


def take(lock, tries: int) -> bool:
    """Take the project's watcher lock (a few tries, half a second apart); False: another has it."""
    import fcntl
    import time

    for _ in range(tries):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            time.sleep(0.5)
    return False  # another watcher has this project


def running_watcher(ledger) -> bool:
    """Whether a watcher holds the project's pid file lock now."""
    import fcntl

    try:
        with open(ledger.with_suffix(".pid"), "a+") as pid:
            fcntl.flock(pid, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(pid, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


def spawn(stack: Any, project: str) -> None:
    """Leave a watcher running for the project, unless one runs (one ending just now looks again,
    and sees the hold of the start that calls this)."""
    import os
    import subprocess
    import sys

    from airpods.paths import health_ledger, private_folder

    ledger = health_ledger(stack.environ, project)
    private_folder(ledger.parent)
    if running_watcher(ledger):
        return
    log = ledger.with_suffix(".log")
    argv = [sys.executable, "-m", "airpods"]
    if stack.config_path:
        argv += ["--config", stack.config_path]
    if stack.url:
        argv += ["--url", stack.url]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a log from before was 0644
    with os.fdopen(fd, "a") as out:
        subprocess.Popen([*argv, "watch", "--project", project], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=stack.environ)

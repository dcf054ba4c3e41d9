"""Telling the running hub to read its routes again, and seeing that it did.

HAProxy's master reloads on SIGUSR2, but only once it has installed its handler: a signal that
arrives while a just-started HAProxy is still starting is lost without a word (PID 1 of a
container ignores a signal it has no handler for), and the hub then routes nothing until the
next refresh. Measured here: `podman kill --signal SIGUSR2` right after `podman run` left one
"Loading success." in its log, not two. So the reload is confirmed from the hub's own log (the
master says "Loading success." after each load) and the signal is sent again when it went
unheard; a runtime that shows the hub's output not at all is signalled once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from airpods.health.wait import Done, Pending, WaitTimeout, wait_for

if TYPE_CHECKING:
    from airpods.runtime.port import ContainerRuntime

LOADED = "Loading success."  # HAProxy's master, once a load or reload started its workers
FIRST_LINE = 0.5  # seconds a container started just now may take to print its first line
READY = 10.0  # seconds its first load may take
TRIES, HEARD = 3, 3.0  # signals at most, and how long each may take to show in the log


def _stamp(line: str) -> float | None:
    head = line.split(" ", 1)[0]
    try:
        return datetime.fromisoformat(re.sub(r"\.\d+", "", head).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _loads(runtime: ContainerRuntime, container: str, since: float) -> int | None:
    """How many loads this run of the container logged; None: no line of this run yet."""
    lines = [line for line in runtime.logs(container, timestamps=True)
             if (at := _stamp(line)) is not None and at >= int(since)]
    return sum(LOADED in line for line in lines) if lines else None


def _until(probe: Callable[[], bool], timeout: float, clock: Callable[[], float],
           sleep: Callable[[float], None]) -> bool:
    try:
        return wait_for(lambda: Done(True) if probe() else Pending("waiting"), timeout=timeout, cap=0.1,
                        clock=clock, sleep=sleep)
    except WaitTimeout:
        return False


def reload(runtime: ContainerRuntime, container: str, signal: str, *, started_at: float | None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           now: Callable[[], float] = time.time) -> bool:
    """Signal the hub to reload; True once its log shows it (or when its log shows nothing to go
    by), False when TRIES signals went unheard."""
    since = started_at or 0.0
    fresh = now() - since < READY
    if _loads(runtime, container, since) is None and not (
            fresh and _until(lambda: _loads(runtime, container, since) is not None, FIRST_LINE, clock, sleep)):
        runtime.signal_container(container, signal)  # no output to go by (the in-memory runtime)
        return True
    _until(lambda: (_loads(runtime, container, since) or 0) >= 1, READY, clock, sleep)  # its first load
    before = _loads(runtime, container, since) or 0
    for _ in range(TRIES):
        runtime.signal_container(container, signal)
        if _until(lambda: (_loads(runtime, container, since) or 0) > before, HEARD, clock, sleep):
            return True
    return False

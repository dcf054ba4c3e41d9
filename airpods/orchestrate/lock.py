"""One airpods at a time changes pods: a lock file (flock) that every `start` holds while it
plans and while it creates, never while it waits for health. Threads of one process share the
hold (their services never overlap); another process waits, then re-plans and finds the work done."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path


class HostLock:
    def __init__(self, path: Path, on_wait: Callable[[], None] | None = None):
        self.path = path
        self.on_wait = on_wait  # told once when another process holds the lock
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._holders = 0

    def __enter__(self) -> HostLock:
        with self._guard:
            if self._holders == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if self.on_wait:
                        self.on_wait()
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._fd = fd
            self._holders += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            self._holders -= 1
            if self._holders == 0 and self._fd is not None:
                os.close(self._fd)  # closing releases the flock
                self._fd = None


class NoLock:
    """For callers (tests, one-off tools) that need no cross-process exclusion."""

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

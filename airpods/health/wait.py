"""The one polling loop: monotonic clock, short capped backoff, hard deadline.

A probe returns `Done(value)` to finish or `Pending(detail)` to go on; it raises to fail fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Pending:
    detail: Any = None


class WaitTimeout(Exception):
    def __init__(self, waited: float, last: Pending):
        super().__init__(f"timed out after {waited:.1f}s")
        self.waited = waited
        self.last = last


class WaitCancelled(Exception):
    """The caller gave up on the wait (another service failed, or Ctrl-C)."""


def wait_for(probe: Callable[[], Done[T] | Pending], *, timeout: float, initial: float = 0.01,
             cap: float = 0.1, factor: float = 1.6, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, cancel: threading.Event | None = None) -> T:
    """`cancel`, once set, ends the wait at the next round with WaitCancelled."""
    start = clock()
    deadline = start + timeout
    delay = initial
    if cancel is not None:
        sleep = cancel.wait
    while True:
        if cancel is not None and cancel.is_set():
            raise WaitCancelled()
        outcome = probe()
        if isinstance(outcome, Done):
            return outcome.value
        now = clock()
        if now >= deadline:
            raise WaitTimeout(now - start, outcome)
        sleep(min(delay, deadline - now))
        delay = min(delay * factor, cap)

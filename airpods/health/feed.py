"""What the health watcher waits on: Podman's events for its project, read in a thread.

`wait(seconds)` returns at the first event, or when the stream was lost or came back (a look
then reads what was missed), or after `seconds`. A lost stream (the API service restarted, the
socket went away) is reconnected with a growing pause, from the time of the last event seen."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from airpods.errors import AirpodsError
from airpods.runtime.port import ContainerEvent, ContainerRuntime

LOST = ContainerEvent("", "lost", 0.0)  # the stream broke: look (and it is tried again)


class EventFeed:
    def __init__(self, runtime: ContainerRuntime, project: str, say: Any = print, since: float | None = None,
                 pause: float = 0.5, longest: float = 30.0):
        self.runtime, self.project, self.say = runtime, project, say
        self.since = since if since is not None else time.time()
        self.pause, self.longest = pause, longest
        self.events = 0  # seen, of this project
        self.reconnects = 0
        self._queue: queue.Queue[ContainerEvent] = queue.Queue()
        self._handlers: list[Any] = []  # told of each event at once, in the reading thread
        self._thread = threading.Thread(target=self._read, name="podman-events", daemon=True)

    def subscribe(self, handler: Any) -> None:
        self._handlers.append(handler)

    def start(self) -> EventFeed:
        self._thread.start()
        return self

    def _read(self) -> None:
        pause, said = self.pause, ""
        while True:
            try:
                for event in self.runtime.events(since=self.since):
                    pause, said = self.pause, ""
                    self.since = max(self.since, event.at)
                    if event.project and event.project != self.project:
                        continue
                    self.events += 1
                    for handler in self._handlers:
                        handler(event)
                    self._queue.put(event)
            except AirpodsError as exc:
                if exc.message != said:  # said once an outage, not every try
                    said = exc.message
                    self.say(f"Podman's event stream: {exc.message}; trying again (every {self.longest:g} s at most)")
            except Exception as exc:  # noqa: BLE001 - a watcher outlives any one broken read
                self.say(f"Podman's event stream: {type(exc).__name__}: {exc}; trying again")
            self.reconnects += 1
            self._queue.put(LOST)
            time.sleep(pause)
            pause = min(pause * 2, self.longest)

    def wait(self, seconds: float) -> list[ContainerEvent]:
        try:
            got = [self._queue.get(timeout=max(0.0, seconds))]
        except queue.Empty:
            return []
        while True:  # a crash loop sends several at once: one look for all of them
            try:
                got.append(self._queue.get_nowait())
            except queue.Empty:
                return got

"""How domain code tells the terminal what is happening, without importing it."""

from __future__ import annotations

from typing import Protocol

from airpods.runtime.port import PullProgress


class Reporter(Protocol):
    def stage(self, service: str, stage: str, elapsed: float) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def pull(self, progress: PullProgress) -> None: ...


class Silent:
    """A Reporter that records what it was told (tests, --quiet)."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, str]] = []
        self.messages: list[str] = []

    def stage(self, service: str, stage: str, elapsed: float) -> None:
        self.stages.append((service, stage))

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.messages.append("warning: " + message)

    def pull(self, progress: PullProgress) -> None:
        pass

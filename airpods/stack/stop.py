"""What a stop records before the signals go out: the containers airpods stops on purpose (a
SIGKILL it sends is no crash, for the watcher and for `status`)."""

from __future__ import annotations

from typing import Any


def record_stops(stack: Any, found: list) -> None:
    """Remember that airpods stops these containers (a SIGKILL it sends is no crash)."""
    from airpods.orchestrate import stops
    from airpods.paths import stops_path

    stops.record(stops_path(stack.environ), [t.container for t in found if t.container])

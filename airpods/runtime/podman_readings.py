"""What the podman-py adapter reads from what runs: logs, memory and CPU counters, a health check
run now, the list of managed containers and Podman's event stream. A part of PodmanRuntime
(runtime/podman_adapter.py), which gives it `_get`, `_call`, `_container` and its clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from airpods.errors import RuntimeFailure, RuntimeUnavailable
from airpods.plan.spec import LABEL_MANAGED
from airpods.runtime.podman_wire import API, broken_stream_errors, container_state, lost_hint, message_of, usage_of
from airpods.runtime.port import ContainerEvent, ContainerState, ContainerUsage


class Readings:
    url: str
    socket_path: str | None
    stream_client: Any
    _get: Any
    _call: Any
    _container: Any
    _unreachable: Any

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False,
             timestamps: bool = False) -> Iterator[str]:
        container = self._container(name, self.stream_client if follow else None)
        if container is None:
            raise RuntimeFailure(f"container {name} does not exist")
        stream = self._call(f"logs of {name}", container.logs, stream=True, follow=follow,
                            tail=tail if tail is not None else "all", stdout=True, stderr=True, timestamps=timestamps)
        from podman.errors import APIError

        pending = ""
        try:
            for chunk in stream:
                text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
                pending += text
                *lines, pending = pending.split("\n")
                yield from lines
        except (APIError, OSError, *broken_stream_errors()) as exc:  # the API went away: not a normal end
            if pending:
                yield pending
            raise RuntimeUnavailable(f"lost the connection to the Podman API at {self.url} while reading "
                                     f"the log of {name}: {message_of(exc)[:200]}", hint=lost_hint(self.url)) from exc
        if pending:
            yield pending

    def memory_usage(self, name: str) -> int | None:
        """Memory the container uses now (cgroup usage); None where stats are unavailable
        (rootless cgroups v1) or it is not running."""
        try:
            status, data = self._get("/containers/stats", containers=name, stream="false")
        except RuntimeFailure:
            return None
        stats = (data or {}).get("Stats") or [] if status == 200 else []
        usage = stats[0].get("MemUsage") if stats else None
        return int(usage) if isinstance(usage, (int, float)) and usage > 0 else None

    def memory_peak(self, name: str) -> int | None:
        """The most memory the container used since it started: its cgroup's memory.peak (v2;
        max_usage_in_bytes on v1), read on this machine; None where that is not readable (a
        remote Podman, a kernel before 5.19)."""
        from pathlib import Path

        try:
            status, data = self._get(f"/containers/{quote(name, safe='')}/json")
        except RuntimeFailure:
            return None
        path = str(((data or {}).get("State") or {}).get("CgroupPath") or "") if status == 200 else ""
        if not path or self.socket_path is None or ".." in path.split("/"):
            return None
        for candidate in (Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.peak",
                          Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.max_usage_in_bytes"):
            try:
                return int(candidate.read_text().strip())
            except (OSError, ValueError):
                continue
        return None

    def resource_usage(self, names: list[str]) -> dict[str, ContainerUsage]:
        """CPU and memory counters of these containers, in one call (libpod stats, not streamed);
        those not running, or on an engine without stats (rootless cgroups v1), are left out. One
        that stopped since it was listed fails the whole call (200, "Stats": null): then each is
        asked alone."""
        if not names:
            return {}
        query = urlencode([("containers", n) for n in names] + [("stream", "false")])
        try:
            status, data = self._get(f"/containers/stats?{query}")
        except RuntimeFailure:
            status, data = 500, None
        failed = status != 200 or (data or {}).get("Error") is not None or not (data or {}).get("Stats")
        if not failed or len(names) == 1:
            return {} if failed else usage_of(data)
        return {k: v for n in names for k, v in self.resource_usage([n]).items()}

    def list_managed(self) -> list[ContainerState]:
        _, items = self._get("/containers/json", all="true",
                             filters=json.dumps({"label": [f"{LABEL_MANAGED}=true"]}))
        return [container_state(c) for c in items or []]

    def run_healthcheck(self, name: str) -> str:
        """Run the container's check now (what Podman's timer would do): Podman records the
        result and, after `retries` failures, takes its on-failure action (restart)."""
        status, data = self._get(f"/containers/{quote(name, safe='')}/healthcheck", timeout=600)
        if status >= 400:
            raise RuntimeFailure(f"health check {name}: {(data or {}).get('message', status)}")
        return str((data or {}).get("Status") or "")

    def events(self, since: float | None = None) -> Iterator[ContainerEvent]:
        """Podman's events for managed containers as they happen (a stream with no read timeout);
        a lost stream raises RuntimeUnavailable (the caller reconnects and looks once)."""
        import http.client

        from airpods.runtime.podman_events import query, read_lines, unix_lines

        try:
            if self.socket_path is None:  # tcp:// or ssh://: podman-py's stream
                lines = self._call("GET /events", self.stream_client.api.get, f"/events?{query(since)}",
                                   stream=True).iter_lines()
            else:
                lines = unix_lines(self.socket_path, f"{API}/events?{query(since)}")
            yield from read_lines(lines)
        except (OSError, http.client.HTTPException, *broken_stream_errors()) as exc:
            raise self._unreachable(f"the event stream broke: {exc}") from exc
        raise self._unreachable("the event stream ended")

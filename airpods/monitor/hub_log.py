"""The hub's own account of its members, from HAProxy's log (the line format is plan/hub.py's
LOG_FORMAT): the requests each member answered in the last interval and minute, how many of them
failed or were cut, their median time, and whether HAProxy's health checks have it up or down.
Nothing here asks a member anything: these are the figures of the traffic that went through."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from airpods.plan.hub import LOG_TAG

_STATE = re.compile(r"Server (\S+)/(\S+) is (UP|DOWN)(?:, reason: ([^,]+))?")
FAILED_ENDS = ("S", "D")  # HAProxy's termination codes: the server aborted or errored; the server went down


@dataclass
class Member:
    """One member's figures over the log read."""

    recent: int = 0  # requests that ended within the last interval
    minute: int = 0  # ... within the last minute
    errors: int = 0  # of those: a 5xx, or cut by the member
    times: list[int] = field(default_factory=list)  # total ms of the last minute's requests
    state: str | None = None  # "up" / "down" by HAProxy's last health-check word; None: no change seen
    why: str | None = None  # the reason it gave for going down


def _request(line: str) -> tuple[float, int, str, int, str] | None:
    """(ended at, total ms, member, status, how it ended) of one request line, or None."""
    parts = line.split()
    try:
        i = parts.index(LOG_TAG)
        began, total, _backend, member, status, _size, end = parts[i + 1:i + 8]
        ms = max(int(total), 0)
        return float(began) + ms / 1000, ms, member, int(status), end
    except (ValueError, IndexError):
        return None


def members(lines: list[str], now: float, interval: float) -> dict[str, Member]:
    """Figures per member id ("host-NAME", "local-NAME"), from the hub container's log lines."""
    out: dict[str, Member] = {}
    for line in lines:
        if LOG_TAG in line:
            req = _request(line)
            if req is None or not req[2].startswith(("host-", "local-")):
                continue  # <NOSRV>: answered by the hub itself (the listing, its own errors)
            ended, ms, mid, status, end = req
            m = out.setdefault(mid, Member())
            if ended > now - interval:
                m.recent += 1
            if ended > now - 60:
                m.minute += 1
                m.times.append(ms)
                if status >= 500 or status < 0 or end[:1] in FAILED_ENDS:
                    m.errors += 1
            continue
        found = _STATE.search(line)
        if found and found.group(1) == found.group(2):  # the member's own backend, not a set tracking it
            m = out.setdefault(found.group(2), Member())
            m.state = found.group(3).lower()
            m.why = (found.group(4) or "").strip() or None if m.state == "down" else None
    return out


def host_rows(hub: Any, container: str, seen: dict[str, Member], interval: float) -> list[dict[str, Any]]:
    """`top`'s row per host of the hub (`hub`: its spec; `seen`: members() of its log)."""
    rows = []
    for mid, title, _relay in hub.hub_members:
        if not mid.startswith("host-"):
            continue
        m = seen.get(mid, Member())
        rows.append({"service": mid.removeprefix("host-"), "model": None, "kind": "host",
                     "state": m.state or "up", "container": container,
                     "why": f"the hub's checks fail: {m.why or 'no answer'}" if m.state == "down" else None,
                     "cpu_percent": None, "memory_bytes": None, "vram": {}, "hub": hub.name, "title": title,
                     "requests_per_s": round(m.recent / max(interval, 1e-6), 2), "requests_last_minute": m.minute,
                     "errors_last_minute": m.errors, "median_ms": round(median(m.times)) if m.times else None})
    return rows

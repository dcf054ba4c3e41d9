"""What `airpods top` shows, gathered: for each llama.cpp service (and each model a router has
loaded) two readings of /metrics and /slots an interval apart, the container's CPU and memory
from Podman, VRAM per GPU from the driver; for the gateway, its access log. A service that does
not answer gets a row that says why; nothing here raises for one service's trouble.

The rows are plain dicts with stable keys (docs/monitoring.md lists them): `airpods top --json`
prints them as they are."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from airpods.monitor.llama_sample import Reading, activity
from airpods.monitor.prom_text import values

LLAMA_FIELDS = ("requests_processing", "requests_deferred", "prompt_tokens_per_s", "generation_tokens_per_s",
                "kv_cache_used_percent", "slots_busy", "slots_total", "slots", "draft_acceptance")


class Unanswered(Exception):
    """The endpoint did not give a reading; the message says why, for the row."""


@dataclass(frozen=True)
class Watch:
    """One llama.cpp endpoint to read: a service, or one model of a router."""

    service: str
    base: str  # http://127.0.0.1:PORT
    key: str | None
    model: str | None = None  # a router's model id
    unified: bool = False  # its slots share one KV cache (each slot's n_ctx is the whole cache)

    def _query(self) -> str:
        return f"?model={quote(self.model, safe='')}&autoload=false" if self.model else ""

    def _get(self, path: str, timeout: float) -> Any:
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            conn.request("GET", path + self._query(), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unanswered(f"no answer at {self.base} ({exc.__class__.__name__}: {exc})") from exc
        finally:
            conn.close()
        if resp.status == 501 or (resp.status == 404 and path == "/metrics"):
            raise Unanswered(f"{path} is off (metrics = false, or --metrics not in its argv)")
        if resp.status != 200:
            raise Unanswered(f"{path}: HTTP {resp.status}")
        return body

    def read(self, timeout: float = 2.0) -> Reading:
        metrics = values(self._get("/metrics", timeout).decode("utf-8", "replace"))
        try:
            slots = json.loads(self._get("/slots", timeout))
        except ValueError as exc:
            raise Unanswered("/slots did not answer JSON") from exc
        return Reading.of(time.monotonic(), metrics, slots)


def llama_rows(watches: list[Watch], interval: float, sleep: Callable[[float], None] = time.sleep,
               first: dict[Watch, Reading | str] | None = None) -> tuple[list[dict[str, Any]], dict]:
    """A row per watch from two readings `interval` apart (`first`: the readings of the previous
    round, so a live view reads each endpoint once per round). Returns (rows, these readings)."""
    before: dict[Watch, Reading | str] = dict(first or {})
    missing = [w for w in watches if w not in before]
    for w in missing:
        before[w] = _try(w)
    if missing:
        sleep(interval)
    after = {w: _try(w) for w in watches}
    rows = []
    for w in watches:
        row: dict[str, Any] = {"service": w.service, "model": w.model, **dict.fromkeys(LLAMA_FIELDS)}
        a, b = before[w], after[w]
        if isinstance(b, str):
            row["why"] = b
        elif isinstance(a, str):  # answered only now: the rates need a second reading
            row.update({k: v for k, v in activity(b, b, w.unified).to_json().items() if not k.endswith("_per_s")})
            row["why"] = None
        else:
            row.update(activity(a, b, w.unified).to_json())
            row["why"] = None
        rows.append(row)
    return rows, after


def _try(w: Watch) -> Reading | str:
    try:
        return w.read()
    except Unanswered as exc:
        return str(exc)


def gateway_figures(lines: list[str], now: float, interval: float) -> dict[str, Any]:
    """Requests per second over the last interval, and who used it in the last minute, from
    Caddy's access log (entries with a key owner; refused requests count as requests)."""
    from airpods.gateway.access import entry

    recent, people = 0, set()
    minute = 0
    for line in lines:
        e = entry(line)
        if e is None:
            continue
        ts = float(e.get("ts") or 0)
        if ts > now - interval:
            recent += 1
        if ts > now - 60:
            minute += 1
            if e.get("user_id") and int(e.get("status") or 0) != 401:
                people.add(str(e["user_id"]))
    return {"requests_per_s": round(recent / max(interval, 1e-6), 2), "requests_last_minute": minute,
            "people_active": sorted(people)}

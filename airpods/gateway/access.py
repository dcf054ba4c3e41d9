"""Caddy's JSON access log, read back: who used the gateway when, and one readable line per request
(`airpods logs gateway`). The log names a key's owner (`user_id`) and never the key: Caddy redacts
the Authorization header unless told otherwise, and the gateway's Caddyfile never tells it."""

from __future__ import annotations

import json
import time


def entry(line: str) -> dict | None:
    """The access entry a log line holds, or None (another log line, or not JSON)."""
    if '"handled request"' not in line:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("msg") == "handled request" else None


def last_use(lines: list[str]) -> dict[str, float]:
    """owner -> the time of their last request that the gateway let through."""
    seen: dict[str, float] = {}
    for line in lines:
        e = entry(line)
        if e is None or not e.get("user_id") or int(e.get("status") or 0) == 401:
            continue
        when = float(e.get("ts") or 0)
        seen[e["user_id"]] = max(when, seen.get(e["user_id"], 0.0))
    return seen


def readable(line: str) -> str:
    """'2026-11-30T02:00:11Z alice GET /v1/chat/completions 200 1.234s' for an access entry; any
    other line as it is."""
    e = entry(line)
    if e is None:
        return line
    request = e.get("request") or {}
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(e.get("ts") or 0)))
    who = e.get("user_id") or "-"
    return (f"{when} {who} {request.get('remote_ip', '-')} {request.get('method', '-')} "
            f"{request.get('uri', '-')} {e.get('status', '-')} {float(e.get('duration') or 0):.3f}s")

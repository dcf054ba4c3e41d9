"""Use per person: requests, errors and time from the gateway's access log (Caddy names each
request's key owner), tokens from llama-server's own log of each request it served, matched by
time. Neither program is changed and nothing sits in the traffic: Caddy cannot see a response's
token counts, and llama-server cannot see who asked, so each gateway request is paired with the
llama-server task that ran within its start and end on the service it was routed to.

Limits (docs/gateway.md): two requests to one service whose times overlap are paired by the
nearest end, which can swap their token counts between the two people; a request that never
reached a model (refused, or served from Open WebUI's own paths) has no tokens. The pairs are
kept in a ledger (usage.jsonl, 0600, in the gateway's folder), so history outlives the
containers' logs, and a revoked person's history stays."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from airpods.gateway.access import entry

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:\d\d)\s")
_TASK = re.compile(r"\|\s*task (\d+)\s*\|")
_CHILD = re.compile(r"^\[(\d+)\]\s")
_OFFSET = re.compile(r"^(\d+)\.(\d\d)\.(\d{3})\.(\d{3})\s")
_EMBEDDED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)\s?")
_SPAWN = re.compile(r"spawning server instance with name=(\S+) on port (\d+)")
_EVAL = re.compile(r"^\s*eval time =.*?/\s*(\d+) tokens")
_RELEASE = re.compile(r"stop processing: n_tokens = (\d+)")
SLACK = 0.25  # seconds: the two clocks are the host's, but lines are stamped when Podman reads them


@dataclass
class Task:
    """One request llama-server served, from its log."""

    key: tuple[str, int]  # (child port or "", task id)
    start: float
    end: float | None = None
    completion: int = 0
    total: int | None = None  # n_tokens at release: prompt + generated
    model: str | None = None

    @property
    def prompt(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.completion)


@dataclass
class Use:
    """One request through the gateway, with the tokens of the task it was paired with."""

    ts: float  # when it ended
    user: str
    service: str
    uri: str
    status: int
    seconds: float
    method: str = "POST"
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def ident(self) -> tuple:
        return (round(self.ts, 6), self.user, self.uri, self.status)


def _stamp(line: str) -> tuple[float, str] | None:
    m = _STAMP.match(line)
    if m is None:
        return None
    text = m.group(1)[:26] + ("+00:00" if m.group(2) == "Z" else m.group(2))
    try:
        return datetime.fromisoformat(text).timestamp(), line[m.end():]
    except ValueError:
        return None


@dataclass
class _Line:
    stamp: float  # Podman's, whole seconds (the API gives no fraction)
    stream: str  # "" for the server itself, the port for a router's child
    offset: float | None  # llama-server's own time since it started, to the microsecond
    text: str
    epoch: int = 0  # which run of that stream (a restart begins its clock again)


def _lines(raw: list[str]) -> list[_Line]:
    out, last = [], {}
    epochs: dict[str, int] = {}
    for item in raw:
        stamped = _stamp(item)
        if stamped is None:
            continue
        at, rest = stamped
        child = _CHILD.match(rest)
        stream = child.group(1) if child else ""
        rest = rest[child.end():] if child else rest
        m = _OFFSET.match(rest)
        offset = None
        if m:
            offset = int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6
            rest = rest[m.end():]
            if offset < last.get(stream, 0.0) - 1.0:  # its clock began again: a new run
                epochs[stream] = epochs.get(stream, 0) + 1
            last[stream] = offset
        out.append(_Line(at, stream, offset, _EMBEDDED.sub("", rest), epochs.get(stream, 0)))
    return out


def _anchors(lines: list[_Line], started_at: float | None) -> dict[tuple[str, int], float]:
    """When each run of each stream began, in wall-clock seconds: bounded by every line (its clock
    plus its offset must fall in the second Podman stamped), then the container's start time or,
    for a router's child, the router's line that spawned it, where it falls within the bounds."""
    bounds: dict[tuple[str, int], list[float]] = {}
    for ln in lines:
        if ln.offset is None:
            continue
        lo_hi = bounds.setdefault((ln.stream, ln.epoch), [float("-inf"), float("inf")])
        lo_hi[0] = max(lo_hi[0], ln.stamp - ln.offset)
        lo_hi[1] = min(lo_hi[1], ln.stamp + 1 - ln.offset)
    out = {key: (lo + hi) / 2 for key, (lo, hi) in bounds.items()}
    last_main = max((e for (s, e) in bounds if s == ""), default=None)
    if started_at is not None and last_main is not None:
        lo, hi = bounds[("", last_main)]
        if lo - 0.2 <= started_at <= hi:
            out[("", last_main)] = started_at
    for ln in lines:
        spawn = _SPAWN.search(ln.text)
        if spawn and ln.offset is not None and ("", ln.epoch) in out:
            guess = out[("", ln.epoch)] + ln.offset
            for key in [k for k in bounds if k[0] == spawn.group(2)]:
                lo, hi = bounds[key]
                if lo - 0.2 <= guess <= hi:
                    out[key] = guess
    return out


def tasks(raw: list[str], model: str | None = None, started_at: float | None = None) -> list[Task]:
    """The tasks of a llama-server log read with Podman's timestamps, timed by llama-server's own
    clock (Podman's API stamps whole seconds). A router's children (lines "[PORT] ...") get the
    model that the router's "spawning ... name=ID on port PORT" line named last before."""
    lines = _lines(raw)
    anchors = _anchors(lines, started_at)
    spawns = sorted((ln.stamp, m.group(2), m.group(1)) for ln in lines if (m := _SPAWN.search(ln.text)))
    found: dict[tuple[str, int, int], Task] = {}
    done: list[Task] = []
    for ln in lines:
        task = _TASK.search(ln.text)
        if task is None:
            continue
        anchor = anchors.get((ln.stream, ln.epoch))
        at = anchor + ln.offset if anchor is not None and ln.offset is not None else ln.stamp
        key = (ln.stream, ln.epoch, int(task.group(1)))
        rest = ln.text[task.end():]
        if "launch_slot_" in ln.text:
            named = [name for when, port, name in spawns if port == ln.stream and when <= ln.stamp + 1]
            found[key] = Task((ln.stream, key[2]), at, model=named[-1] if named else (None if ln.stream else model))
        elif key in found and (ev := _EVAL.match(rest)):
            found[key].completion = int(ev.group(1))
        elif key in found and (rel := _RELEASE.search(rest)):
            t = found.pop(key)
            t.end, t.total = at, int(rel.group(1))
            done.append(t)
    return done


def requests(lines: list[str], routes: dict[str, str], hubs: frozenset[str] = frozenset()) -> list[Use]:
    """Requests with a key owner from Caddy's access log; `routes`: path prefix -> service; `hubs`:
    the services whose answers name the model they were routed by (the hub's)."""
    out = []
    by_length = sorted(routes.items(), key=lambda kv: -len(kv[0]))
    for line in lines:
        e = entry(line)
        if e is None or not e.get("user_id"):
            continue
        uri = str((e.get("request") or {}).get("uri") or "")
        service = next((s for prefix, s in by_length if prefix != "/" and uri.startswith(prefix + "/")), None)
        if service is None:
            continue  # Open WebUI's own paths: its login, not a key
        request = e.get("request") or {}
        if request.get("method") != "POST":
            continue  # listing models and the like: not a use of one
        out.append(Use(float(e.get("ts") or 0), str(e["user_id"]), service, uri.split("?", maxsplit=1)[0],
                       int(e.get("status") or 0), float(e.get("duration") or 0), "POST",
                       _routed_model(e) if service in hubs else None))
    return out


def _routed_model(e: dict) -> str | None:
    """The model the hub routed the request by (its X-Airpods-Model, set by the hub itself, never
    passed on from a host), as Caddy logs the response's headers."""
    from airpods.plan.hub_routes import ROUTABLE

    value = ((e.get("resp_headers") or {}).get("X-Airpods-Model") or [None])[0]
    return value if isinstance(value, str) and ROUTABLE.match(value) else None


def pair(uses: list[Use], served: list[Task]) -> None:
    """Give each successful request the tokens of the task that ran within it (nearest end first)."""
    free = [t for t in served if t.end is not None]
    for use in sorted(uses, key=lambda u: u.ts):
        if use.status >= 400 or use.prompt_tokens is not None or use.method != "POST":
            continue
        start = use.ts - use.seconds
        fits = [t for t in free if t.start >= start - SLACK and t.end <= use.ts + SLACK]  # type: ignore[operator]
        if not fits:
            continue
        best = min(fits, key=lambda t: abs(t.end - use.ts))  # type: ignore[operator]
        free.remove(best)
        use.prompt_tokens, use.completion_tokens = best.prompt, best.completion
        use.model = best.model or use.model


class Ledger:
    """usage.jsonl: one line per request, appended once (the access log is read again each time)."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list[Use]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(Use(**json.loads(line)))
            except (ValueError, TypeError):
                continue
        return out

    def add(self, uses: list[Use]) -> list[Use]:
        """Append the requests not recorded yet; returns every recorded request."""
        import os

        have = self.read()
        seen = {u.ident() for u in have}
        new = [u for u in uses if u.ident() not in seen]
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(asdict(u), sort_keys=True) + "\n" for u in new)
        return have + new


def summary(uses: list[Use], since: float | None = None, person: str | None = None) -> list[dict[str, Any]]:
    """Per person and model: requests, errors, seconds, prompt and completion tokens."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for u in uses:
        if (since is not None and u.ts < since) or (person is not None and u.user != person):
            continue
        model = u.model or u.service
        row = rows.setdefault((u.user, model), {"person": u.user, "model": model, "service": u.service,
                                                "requests": 0, "errors": 0, "seconds": 0.0, "prompt_tokens": 0,
                                                "completion_tokens": 0, "unmatched": 0, "last": 0.0})
        row["requests"] += 1
        row["errors"] += u.status >= 400
        row["seconds"] = round(row["seconds"] + u.seconds, 3)
        if u.prompt_tokens is None and u.status < 400:
            row["unmatched"] += 1
        row["prompt_tokens"] += u.prompt_tokens or 0
        row["completion_tokens"] += u.completion_tokens or 0
        row["last"] = max(row["last"], u.ts)
    return sorted(rows.values(), key=lambda r: (r["person"], r["model"]))

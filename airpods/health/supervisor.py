"""What keeps a project's services healthy after start, beside Podman.

Podman restarts a container whose health check fails `retries` times (on-failure = restart) and
one that exits (the restart policy). It does not count health restarts, nor stop a service that
keeps failing, and it runs the checks only from systemd timers, which many hosts lack (a
container, WSL, a rootless user without a session). The watcher does the rest, one process per
project (cli/commands/watch.py), on the runtime port:

- where there are no timers, it runs each check on its interval (`runtime.run_healthcheck`), so
  Podman records the result and restarts as it would;
- it sees every restart (a new StartedAt, or Podman's RestartCount going up), says why (the
  failed checks' output, or the exit code) and counts it in a ledger `status` reads;
- after `max_restarts` restarts in a row (no quiet spell of `calm_after` seconds between them)
  it stops the container, on purpose, and says so; `airpods start` gives it a new chance.

This module holds what is counted and decided (the policy, the ledger, observe, the holds of a
start at work); health/watcher.py holds the loop that acts on it. Pure but for the ledger file;
the clock is passed in."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airpods.paths import private_folder
from airpods.plan.spec import DEFAULT_PROJECT, LABEL_HEALTH, LABEL_PROJECT, LABEL_SERVICE
from airpods.runtime.port import STOP_EXIT_CODES, ContainerState


@dataclass(frozen=True)
class HealthPolicy:
    """The label `io.airpods.health` a container carries: its check's interval, retries,
    max_restarts and start period (the container, not today's config, is what is watched)."""

    interval: float
    retries: int
    max_restarts: int
    start_period: float

    @staticmethod
    def parse(text: str) -> HealthPolicy | None:
        try:
            interval, retries, max_restarts, start_period = text.split("/")
            return HealthPolicy(float(interval), int(retries), int(max_restarts), float(start_period))
        except ValueError:
            return None

    @property
    def calm_after(self) -> float:
        """Running this long after a restart ends a row of restarts."""
        return max(60.0, 10 * self.interval)


@dataclass
class Record:
    """One service's restarts, for the container airpods created (a new container starts at 0)."""

    container_id: str
    restarts: int = 0
    in_a_row: int = 0
    last_failure: dict[str, Any] | None = None  # {"time": ISO 8601, "at": epoch, "reason": ...}
    gave_up: bool = False
    started_at: float | None = None  # the StartedAt last seen
    restart_count: int = 0  # Podman's RestartCount last seen
    last_restart: float | None = None
    hold_until: float = 0.0  # `airpods start` is at work on it: seen, not counted, never stopped
    holder: int = 0  # that start's pid: a hold of a start that is gone holds nothing


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Ledger:
    """The watcher's records of one project, in a JSON file (no secrets in it)."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, Record] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.records = {k: Record(**v) for k, v in data.items() if isinstance(v, dict)}
        except (OSError, ValueError, TypeError):
            pass

    def save(self) -> None:
        private_folder(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in self.records.items()}, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    @staticmethod
    @contextlib.contextmanager
    def locked(path: Path) -> Iterator[Ledger]:
        """Read, change, write, under a lock: the watcher and `start` both write it."""
        private_folder(path.parent)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ledger = Ledger(path)
            yield ledger
            ledger.save()

    def record_for(self, service: str, state: ContainerState) -> Record:
        rec = self.records.get(service)
        if rec is not None and not rec.container_id and state.id:  # held by a start before the watcher knew it
            rec.container_id, rec.started_at = state.id, state.started_at
        if rec is None or (state.id and rec.container_id != state.id):  # Podman counts from its last start
            rec = self.records[service] = Record(state.id, started_at=state.started_at)
        return rec


def check_words(output: str, exit_code: int | None) -> str:
    """What a failed check said: its own last line (airpods' checks end with one), not a tool's
    message printed beside it. Podman reads the check's stdout and stderr apart, so curl's error
    (stderr) can come after the check's own words (stdout): seen once in CI."""
    lines = [line for line in output.splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith(("curl: ", "wget: "))]
    return (own or lines)[-1] if lines else f"exit code {exit_code}"


def reason_of(state: ContainerState, since: float | None) -> str:
    """Why it restarted: the health check's own words when its checks failed since the last start,
    else how the process ended."""
    failed = [r for r in state.health_log if r.exit_code != 0 and (since is None or r.at >= since - 1)]
    if failed:
        return f"unhealthy: {len(failed)} failed health checks ({check_words(failed[-1].output, failed[-1].exit_code)})"
    if state.oom_killed:
        return "killed for memory (OOM)"
    code = state.exit_code
    return (f"the process exited (code {code}); the restart policy started it again" if code not in (None, 0)
            else "the process ended (killed or crashed); the restart policy started it again")


@dataclass
class Observation:
    service: str
    restarted: int = 0
    stop: bool = False
    message: str = ""


def observe(ledger: Ledger, service: str, state: ContainerState, policy: HealthPolicy, now: float) -> Observation:
    """Compare a container with what was last seen: count restarts, and decide to give up."""
    rec = ledger.record_for(service, state)
    out = Observation(service)
    if now < rec.hold_until:
        rec.started_at, rec.restart_count = state.started_at, state.restart_count
        return out
    new_start = (state.started_at is not None and rec.started_at is not None
                 and state.started_at > rec.started_at + 0.5)
    by_policy = max(0, state.restart_count - rec.restart_count)
    count = max(by_policy, 1 if new_start else 0)
    if count and not rec.gave_up:
        if rec.last_restart is not None and now - rec.last_restart > policy.calm_after:
            rec.in_a_row = 0
        reason = reason_of(state, rec.started_at)
        rec.restarts += count
        rec.in_a_row += count
        rec.last_restart = now
        rec.last_failure = {"time": iso(now), "at": int(now), "reason": reason}
        out.restarted, out.message = count, f"{service} restarted ({reason})"
        if rec.in_a_row > policy.max_restarts:
            out.stop, out.message = True, f"{service} stopped: {give_up(rec, now, reason, policy)}"
    rec.started_at = state.started_at if state.started_at is not None else rec.started_at
    rec.restart_count = state.restart_count
    crashed = (not state.running and state.status in ("exited", "stopped") and not state.oom_killed
               and state.exit_code not in (None, *STOP_EXIT_CODES))
    if crashed and not rec.gave_up and rec.in_a_row >= policy.max_restarts:
        # Exited again after max_restarts restarts in a row: stopped before the restart policy
        # starts it once more (a crash loop restarts ~10 times a second; seen from its "died" event).
        rec.last_restart = now
        reason = give_up(rec, now, f"the process exited again (code {state.exit_code})", policy)
        out.stop, out.message = True, f"{service} stopped: {reason}"
    if rec.gave_up and state.running:  # given up on, and running again: not by `airpods start`
        out.stop = True
    return out


def give_up(rec: Record, at: float, why: str, policy: HealthPolicy) -> str:
    """Leave the service stopped: its last failure says why, and that airpods stopped it."""
    rec.gave_up = True
    rec.last_failure = {"time": iso(at), "at": int(at), "reason": (
        f"{why}; stopped by airpods after {rec.in_a_row} restarts in a row (health.max_restarts = "
        f"{policy.max_restarts}; airpods start tries again)")}
    return rec.last_failure["reason"]


def watched(states: list[ContainerState], project: str) -> list[tuple[str, ContainerState, HealthPolicy]]:
    """The project's service containers that carry a health policy."""
    out = []
    for s in states:
        if s.infra or s.labels.get(LABEL_PROJECT, DEFAULT_PROJECT) != project:
            continue
        policy = HealthPolicy.parse(s.labels.get(LABEL_HEALTH, ""))
        if policy is not None and policy.interval > 0 and LABEL_SERVICE in s.labels:
            out.append((s.labels[LABEL_SERVICE], s, policy))
    return out


def hold(ledger: Ledger, services: list[str], now: float, seconds: float = 900, holder: int = 0) -> None:
    """`airpods start` (pid `holder`) is about to start (or recreate) these: the watcher leaves them
    alone until `forget`, until that process is gone, or for `seconds`, should it never end."""
    for name in services:
        rec = ledger.records.get(name) or ledger.records.setdefault(name, Record(""))
        rec.hold_until, rec.gave_up, rec.holder = now + seconds, False, holder


def forget(ledger: Ledger, states: dict[str, ContainerState | None], started: set[str] = frozenset()) -> None:
    """`airpods start` gives a service a new chance: its count starts again (the watcher's log keeps
    the history). For those in `started` (started by it, and not failed) it starts at 0, Podman's
    own count after a start, so that the restarts of a crash loop since that start are all counted
    even when it was between two of them as the start looked; the others from what Podman says."""
    for name, state in states.items():
        if state is None or (not state.running and name not in started):
            ledger.records.pop(name, None)
        else:
            ledger.records[name] = Record(state.id, started_at=state.started_at,
                                          restart_count=0 if name in started else state.restart_count)


def status_fields(ledger_path: Path, service: str, container_id: str) -> dict[str, Any]:
    """`restarts` and `last_failure` for `status`, for this very container."""
    rec = Ledger(ledger_path).records.get(service)
    if rec is None or (container_id and rec.container_id and rec.container_id != container_id):
        return {"restarts": 0, "last_failure": None, "gave_up": False}
    return {"restarts": rec.restarts, "last_failure": rec.last_failure, "gave_up": rec.gave_up}


def stop_timeout(state: ContainerState) -> int:
    """The container's stop timeout (its label), 10 s where it does not say one."""
    from airpods.plan.spec import LABEL_STOP_TIMEOUT

    value = state.labels.get(LABEL_STOP_TIMEOUT, "")
    return int(value) if value.isdigit() and 0 < int(value) <= 86400 else 10


def holder_alive(pid: int) -> bool:
    """Whether the `airpods start` that holds a service still runs (0: a hold from before pids;
    another user's process under that pid is not our start)."""
    from airpods.probes.process import process_exists

    return pid <= 0 or process_exists(pid) is True


def release_dead_holds(ledger: Ledger, alive: Any = holder_alive) -> None:
    """A start killed before it let go (SIGKILL, a closed terminal) holds nothing any more."""
    for rec in ledger.records.values():
        if rec.hold_until and not alive(rec.holder):
            rec.hold_until = 0.0



def live_holds(ledger: Ledger, now: float, alive: Any = holder_alive) -> list[float]:
    """The holds of starts at work (those of starts that are gone released first): until when each."""
    release_dead_holds(ledger, alive)
    return [r.hold_until for r in ledger.records.values() if r.hold_until > now]

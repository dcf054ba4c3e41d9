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

Pure but for the runtime and the ledger file; the clock is passed in."""

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

from airpods.health.pins import pins_of, published_base
from airpods.paths import private_folder
from airpods.plan.spec import DEFAULT_PROJECT, LABEL_HEALTH, LABEL_PROJECT, LABEL_SERVICE
from airpods.runtime.port import ContainerRuntime, ContainerState


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


def reason_of(state: ContainerState, since: float | None) -> str:
    """Why it restarted: the health check's own words when its checks failed since the last start,
    else how the process ended."""
    failed = [r for r in state.health_log if r.exit_code != 0 and (since is None or r.at >= since - 1)]
    if failed:
        said = failed[-1].output.splitlines()[-1] if failed[-1].output.strip() else f"exit code {failed[-1].exit_code}"
        return f"unhealthy: {len(failed)} failed health checks ({said})"
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
            rec.gave_up = True
            rec.last_failure["reason"] = (f"{reason}; stopped by airpods after {rec.in_a_row} restarts in a row "
                                          f"(health.max_restarts = {policy.max_restarts}; airpods start "
                                          "tries again)")
            out.stop, out.message = True, f"{service} stopped: {rec.last_failure['reason']}"
    rec.started_at = state.started_at if state.started_at is not None else rec.started_at
    rec.restart_count = state.restart_count
    if rec.gave_up and state.running:  # given up on, and running again: not by `airpods start`
        out.stop = True
    return out


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


def hold(ledger: Ledger, services: list[str], now: float, seconds: float = 900) -> None:
    """`airpods start` is about to start (or recreate) these: the watcher leaves them alone until
    `forget` (or `seconds`, should that start never end)."""
    for name in services:
        rec = ledger.records.get(name) or ledger.records.setdefault(name, Record(""))
        rec.hold_until, rec.gave_up = now + seconds, False


def forget(ledger: Ledger, states: dict[str, ContainerState | None]) -> None:
    """`airpods start` gives a service a new chance: its count starts again from what Podman says
    just after the start (the watcher's log keeps the history)."""
    for name, state in states.items():
        if state is None or not state.running:
            ledger.records.pop(name, None)
        else:
            ledger.records[name] = Record(state.id, started_at=state.started_at, restart_count=state.restart_count)


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


def watch(runtime: ContainerRuntime, project: str, ledger_path: Path, *, run_checks: bool, tick: float = 1.0,
          clock: Any = None, sleep: Any = None, say: Any = print, idle_ticks: int = 5,
          parallel: bool = True, stopped: Any = None, key_of: Any = None) -> None:
    """The watcher's loop: until none of the project's watched containers has run for
    `idle_ticks` ticks (everything stopped), observe them and, with `run_checks`, run each
    running one's check on its interval (in threads: a check of a stuck server takes its timeout;
    `parallel = False` runs them in turn, for a test's clock). `stopped(container)` is told of
    each stop the watcher decides on, before it is made. `key_of(service)`: the probe key a
    router's pinned models are touched with (from airpods' secrets folder; None: none)."""
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    clock, sleep = clock or time.time, sleep or time.sleep
    key_of = key_of or (lambda _service: None)
    due: dict[str, float] = {}
    busy: dict[str, Future] = {}
    idle = 0
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="health") as pool:
        while idle < idle_ticks:
            now = clock()
            items = [(svc, runtime.inspect(s.name) or s, policy) for svc, s, policy in
                     watched(runtime.list_managed(), project)]
            alive = any(state.running or state.status in ("stopping", "restarting", "paused", "created")
                        for _, state, _ in items)
            idle = 0 if alive else idle + 1
            with Ledger.locked(ledger_path) as ledger:
                for service, state, policy in items:
                    obs = observe(ledger, service, state, policy, now)
                    if obs.message:
                        say(obs.message)
                    if obs.stop and stopped is not None:
                        stopped(state.name)  # on purpose, as `airpods stop` records it (a 137 is no crash)
                    if obs.stop and state.running:
                        runtime.stop_container(state.name, stop_timeout(state))
            for service, state, _policy in items:  # routers' pinned models: touched, so never the LRU
                pins = pins_of(state) if state.running else []
                url = published_base(state) if pins else None
                for model in pins if url else ():
                    job = f"pin {state.name} {model}"
                    if not (busy.get(job) and not busy[job].done()):
                        busy[job] = pool.submit(_touch, url, model, key_of(service), say) if parallel else None
            for _service, state, policy in items if run_checks else ():
                if not state.running or (busy.get(state.name) and not busy[state.name].done()):
                    continue
                slot = f"{state.id or state.name} {state.labels[LABEL_HEALTH]}"  # a recreated one: its own schedule
                when = due.setdefault(slot, now + policy.interval)
                if now >= when:
                    if parallel:
                        busy[state.name] = pool.submit(_check, runtime, state.name, say)
                    else:
                        _check(runtime, state.name, say)
                    due[slot] = max(when + policy.interval, now)  # on its interval, not the tick's
            sleep(tick)


_SAID: dict[str, str] = {}  # the last problem said per pinned model (said once, not every tick)


def _touch(url: str, model: str, key: str | None, say: Any) -> None:
    from airpods.health.pins import touch

    try:
        touch(url, model, key)
        _SAID.pop(model, None)
    except (OSError, ValueError) as exc:  # starting, restarting, or gone: the next tick tries again
        if _SAID.get(model) != str(exc):
            _SAID[model] = str(exc)
            say(f"keeping pinned model {model} loaded: {exc}")


def _check(runtime: ContainerRuntime, name: str, say: Any) -> None:
    try:
        runtime.run_healthcheck(name)
    except Exception as exc:  # a container gone or stopped between two ticks: seen on the next
        say(f"health check {name}: {exc}")

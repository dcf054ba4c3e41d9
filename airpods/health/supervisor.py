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

from airpods.errors import AirpodsError
from airpods.health.pins import pins_of, published_base
from airpods.paths import private_folder
from airpods.plan.spec import DEFAULT_PROJECT, LABEL_HEALTH, LABEL_PROJECT, LABEL_SERVICE
from airpods.runtime.port import STOP_EXIT_CODES, ContainerRuntime, ContainerState


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
    crashed = (not state.running and state.status in ("exited", "stopped") and not state.oom_killed
               and state.exit_code not in (None, *STOP_EXIT_CODES))
    if crashed and not rec.gave_up and rec.in_a_row >= policy.max_restarts:
        # Exited again after max_restarts restarts in a row: stopped before the restart policy
        # starts it once more (a crash loop restarts ~10 times a second; seen from its "died" event).
        rec.gave_up, rec.last_restart = True, now
        rec.last_failure = {"time": iso(now), "at": int(now), "reason": (
            f"the process exited again (code {state.exit_code}); stopped by airpods after {rec.in_a_row} "
            f"restarts in a row (health.max_restarts = {policy.max_restarts}; airpods start tries again)")}
        out.stop, out.message = True, f"{service} stopped: {rec.last_failure['reason']}"
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


PIN_EVERY = 0.5  # seconds between touches of a router's pinned models (only routers with pins)
LOOK_AGAIN = 2.0  # after a look that failed (the Podman API gone for a moment)
HELD_LOOK = 1.0  # while a start holds a service: look this often (its own end writes no event)
FRESH_END = 3.0  # a watcher that never saw anything run (a start refused before it made any) ends this soon


def holder_alive(pid: int) -> bool:
    """Whether the `airpods start` that holds a service still runs (0: a hold from before pids)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process under that pid: not our start
        return False
    return True


def release_dead_holds(ledger: Ledger, alive: Any = holder_alive) -> None:
    """A start killed before it let go (SIGKILL, a closed terminal) holds nothing any more."""
    for rec in ledger.records.values():
        if rec.hold_until and not alive(rec.holder):
            rec.hold_until = 0.0


def halt(runtime: ContainerRuntime, state: ContainerState, tries: int = 10, pause: float = 0.05,
         sleep: Any = None) -> None:
    """Stop a container so that it stays stopped. Podman 4.3 answers the stop of a container that
    is between an exit and its restart "already stopped", and its restart policy then starts it
    again (measured: a crash loop took two stops and more). Stopping its pod sticks (the restart
    finds the pod's infra container stopped; measured 5 of 5), so the pod is stopped, and stopped
    again while the container is seen running, until it has been seen not running twice."""
    import time

    sleep = sleep or time.sleep
    quiet = 0
    for _ in range(tries):
        if state.running or state.status in ("restarting", "stopping", "initialized") or (state.pod and not quiet):
            with contextlib.suppress(AirpodsError):  # it ended (or began to stop) just now: look again
                if state.pod:
                    runtime.stop_pod(state.pod, stop_timeout(state), infra_first=True)
                else:
                    runtime.stop_container(state.name, stop_timeout(state))
        if state.running or state.status in ("restarting", "stopping", "initialized"):
            quiet = 0
        else:
            quiet += 1
            if quiet >= 2:
                return
            sleep(pause)
        try:
            now = runtime.inspect(state.name)
        except AirpodsError:
            return  # the next look (an event, or the next check) sees it
        if now is None:
            return
        state = now


def watch(runtime: ContainerRuntime, project: str, ledger_path: Path, *, run_checks: bool, clock: Any = None,
          wait: Any = None, say: Any = print, idle_for: float = 30.0, parallel: bool = True,
          stopped: Any = None, key_of: Any = None, alive: Any = holder_alive, report: Any = None,
          subscribe: Any = None) -> None:
    """The watcher's loop. It looks at the project's watched containers (list + inspect) when
    `wait(seconds)` returns, which it does on an event from Podman or when the seconds have passed,
    and sleeps otherwise: until the next health check is due (with `run_checks`: no systemd timers
    here; in threads, a check of a stuck server takes its timeout; `parallel = False` runs them in
    turn, for a test's clock), the next touch of a router's pinned models, or the end. It ends
    when nothing of the project has run, nor been held by a live `airpods start`, for `idle_for`
    seconds. `stopped(container)` is told of each stop it decides on, before it is made.
    `key_of(service)`: the probe key pinned models are touched with (None: none). `report(when,
    what)` is told before each sleep what it waits for next (for `airpods doctor`). `subscribe(f)`
    has f told of each event as it comes (CrashCutter: a crash loop is stopped from its events)."""
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    clock = clock or time.time
    wait = wait or time.sleep
    key_of = key_of or (lambda _service: None)
    due: dict[str, float] = {}
    busy: dict[str, Future] = {}
    idle_since: float | None = None
    looked: dict[str, tuple[str, ContainerState, HealthPolicy]] = {}  # the last look, by container
    changed: set[str] = set()  # the containers the events since named (a look of just those)
    cutter = CrashCutter(runtime, ledger_path, say, stopped)
    if subscribe is not None:
        subscribe(cutter)
    ever = False  # something of the project ran while it watched (else a refused start: it ends soon)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="health") as pool:
        while True:
            now = clock()
            try:
                if changed and looked and all(name in looked for name in changed):  # Podman named them
                    items = [(svc, _inspected(runtime, st) if st.name in changed else st, policy)
                             for svc, st, policy in looked.values()]
                else:  # the first look, a due check, a lost stream, a container not seen before
                    items = [(svc, _inspected(runtime, s), policy) for svc, s, policy in
                             watched(runtime.list_managed(), project)]
            except AirpodsError as exc:  # the API went away for a moment: the feed reconnects too
                say(f"cannot look: {exc.message}")
                wait(LOOK_AGAIN)
                continue
            running = any(state.running or state.status in ("stopping", "restarting", "paused", "created")
                          for _, state, _ in items)
            with Ledger.locked(ledger_path) as ledger:
                release_dead_holds(ledger, alive)
                held = [r.hold_until for r in ledger.records.values() if r.hold_until > now]
                for service, state, policy in items:
                    obs = observe(ledger, service, state, policy, now)
                    if obs.message:
                        say(obs.message)
                    if obs.stop and stopped is not None:
                        stopped(state.name)  # on purpose, as `airpods stop` records it (a 137 is no crash)
                    if obs.stop:
                        halt(runtime, state)
            ever = ever or running
            idle_since = None if running or held else (now if idle_since is None else idle_since)
            if idle_since is not None and now - idle_since >= (idle_for if ever else min(idle_for, FRESH_END)):
                return
            wake = [(now + HELD_LOOK, "the end of a start at work")] if held else []
            if idle_since is not None:
                wake.append((idle_since + (idle_for if ever else min(idle_for, FRESH_END)),
                             "the end: nothing of the project runs"))
            pinned = [(svc, st) for svc, st, _ in items if st.running and pins_of(st)]

            def touch_pins(pinned: list = pinned) -> None:  # routers' pinned models: never the LRU
                for service, state in pinned:
                    url = published_base(state)
                    for model in pins_of(state) if url else ():
                        job = f"pin {state.name} {model}"
                        if parallel and not (busy.get(job) and not busy[job].done()):
                            busy[job] = pool.submit(_touch, url, model, key_of(service), say)

            for _service, state, policy in items if run_checks else ():
                if not state.running:
                    continue
                slot = f"{state.id or state.name} {state.labels[LABEL_HEALTH]}"  # a recreated one: its own schedule
                when = due.setdefault(slot, now + policy.interval)
                if now >= when and not (busy.get(state.name) and not busy[state.name].done()):
                    if parallel:
                        busy[state.name] = pool.submit(_check, runtime, state.name, say)
                    else:
                        _check(runtime, state.name, say)
                    due[slot] = when = max(when + policy.interval, now)  # on its interval, not the tick's
                wake.append((max(when, now + 0.05), f"health check of {_service}"))
            when, what = min(wake) if wake else (now + 3600.0, "an event")
            if report is not None:
                report(when, what if not pinned else f"{what}; touching pinned models every {PIN_EVERY:g} s")
            looked = {state.name: (service, state, policy) for service, state, policy in items}
            cutter.saw(items, now)
            got = _pin_rounds(wait, clock, when, touch_pins) if pinned else wait(max(0.0, when - clock()))
            changed = {e.name for e in got} if isinstance(got, list) and got and all(e.name for e in got) else set()


def _pin_rounds(wait: Any, clock: Any, until: float, touch: Any) -> Any:
    """Touch the pinned models every PIN_EVERY seconds until `until` or an event, without a look
    between touches (a look is Podman API calls: measured 1.5 CPU s a minute when every touch
    had one). Returns what `wait` returned last (the events that ended it, or nothing)."""
    got: Any = None
    while True:
        touch()
        left = until - clock()
        got = wait(max(0.0, min(PIN_EVERY, left)))
        if got or left <= PIN_EVERY:
            return got


class CrashCutter:
    """The fast way out of a crash loop, told of each "died" event in the event reader's thread: a
    look waits on Podman's locks while a loop runs (~300 ms, 3 restarts, measured). The look that
    last saw the container counted `in_a_row` restarts; each crash since (a "died" whose exit code
    is no stop's) is one more, and the one after max_restarts restarts in a row stops it at once.
    The next look records the rest (the restarts during the stop, ~2, measured)."""

    def __init__(self, runtime: ContainerRuntime, ledger_path: Path, say: Any, stopped: Any):
        self.runtime, self.ledger_path, self.say, self.stopped = runtime, ledger_path, say, stopped
        self.looked: dict[str, tuple[str, ContainerState, HealthPolicy, float]] = {}  # by container name
        self.crashes: dict[str, list[float]] = {}

    def saw(self, items: list, at: float) -> None:
        """The main loop's look: these states, read from `at` on."""
        self.looked = {state.name: (service, state, policy, at) for service, state, policy in items}

    def __call__(self, event: Any) -> None:
        if event.action != "died" or event.exit_code in (None, *STOP_EXIT_CODES) or event.name not in self.looked:
            return
        service, state, policy, at = self.looked[event.name]
        times = [t for t in self.crashes.get(event.name, []) if t > at] + [event.at]
        self.crashes[event.name] = times
        crashes = len([t for t in times if t > at])
        with Ledger.locked(self.ledger_path) as ledger:
            rec = ledger.records.get(service)
            if (rec is None or rec.gave_up or rec.hold_until > event.at
                    or (state.id and rec.container_id and rec.container_id != state.id)):
                return
            # the restart count the look saw already holds the crashes before it: only later ones
            row = rec.in_a_row + crashes - 1
            if row < policy.max_restarts:
                return
            rec.gave_up, rec.last_restart = True, event.at
            rec.restarts += crashes - 1
            rec.in_a_row = row
            rec.last_failure = {"time": iso(event.at), "at": int(event.at), "reason": (
                f"the process exited again (code {event.exit_code}); stopped by airpods after {row} restarts "
                f"in a row (health.max_restarts = {policy.max_restarts}; airpods start tries again)")}
        self.say(f"{service} stopped: {rec.last_failure['reason']}")
        if self.stopped is not None:
            self.stopped(state.name)
        halt(self.runtime, state)


def _inspected(runtime: ContainerRuntime, listed: ContainerState) -> ContainerState:
    """Inspect's state (restart count, health log), with the pod's name from the listing (inspect
    names the pod by id only)."""
    from dataclasses import replace

    state = runtime.inspect(listed.name)
    return listed if state is None else replace(state, pod=state.pod or listed.pod)


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

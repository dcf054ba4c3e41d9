"""The watcher's loop (`airpods watch`): it looks at a project's watched containers when Podman's
event stream says something happened, runs the health checks on their intervals where no systemd
timer does, touches routers' pinned models, stops a service that keeps failing, and sleeps
otherwise. What it counts and decides is health/supervisor.py's; this is when and how it acts."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from airpods.errors import AirpodsError
from airpods.health.pins import pins_of, published_base
from airpods.health.supervisor import (
    HealthPolicy,
    Ledger,
    give_up,
    holder_alive,
    live_holds,
    observe,
    stop_timeout,
    watched,
)
from airpods.plan.spec import LABEL_HEALTH
from airpods.runtime.port import STOP_EXIT_CODES, ContainerRuntime, ContainerState

PIN_EVERY = 0.5  # seconds between touches of a router's pinned models (only routers with pins)
LOOK_AGAIN = 2.0  # after a look that failed (the Podman API gone for a moment)
HELD_LOOK = 1.0  # while a start holds a service: look this often (its own end writes no event)
FRESH_END = 3.0  # a watcher that never saw anything run (a start refused before it made any) ends this soon



def halt(runtime: ContainerRuntime, state: ContainerState, tries: int = 10, pause: float = 0.05,
         sleep: Any = None) -> None:
    """Stop a container so that it stays stopped. Podman 4.3 answers the stop of a container that
    is between an exit and its restart "already stopped", and its restart policy then starts it
    again; so does a pod stop (304). Killing the pod's infra container first sticks (the restart
    then fails; measured 5 of 5): its pod is stopped so (runtime.stop_pod, infra_first), and
    again while the container is seen running, until it has been seen not running twice."""
    import time

    sleep = sleep or time.sleep
    quiet = 0
    for _ in range(tries):
        live = state.running or state.status in ("restarting", "stopping", "initialized")
        if live or (state.pod and not quiet):
            with contextlib.suppress(AirpodsError):  # it ended (or began to stop) just now: look again
                if state.pod:
                    runtime.stop_pod(state.pod, stop_timeout(state), infra_first=True)
                else:
                    runtime.stop_container(state.name, stop_timeout(state))
        quiet = 0 if live else quiet + 1
        if quiet >= 2:
            return
        if quiet:
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
          subscribe: Any = None, chore: tuple[float, str, Any] | None = None) -> None:
    """The watcher's loop. It looks at the project's watched containers (list + inspect) when
    `wait(seconds)` returns, which it does on an event from Podman or when the seconds have passed,
    and sleeps otherwise: until the next health check is due (with `run_checks`: no systemd timers
    here; in threads, a check of a stuck server takes its timeout; `parallel = False` runs them in
    turn, for a test's clock), the next touch of a router's pinned models, or the end. It ends
    when nothing of the project has run, nor been held by a live `airpods start`, for `idle_for`
    seconds. `stopped(container)` is told of each stop it decides on, before it is made.
    `key_of(service)`: the probe key pinned models are touched with (None: none). `report(when,
    what)` is told before each sleep what it waits for next (for `airpods doctor`). `subscribe(f)`
    has f told of each event as it comes (CrashCutter: a crash loop is stopped from its events).
    `chore` (every seconds, what, f): f runs in a thread that often while the project runs (the
    hub's routes refreshed from what its hosts serve now); one at a time, its errors said."""
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
    next_chore = clock() + chore[0] if chore is not None else 0.0
    ever = False  # something of the project ran while it watched (else a refused start: it ends soon)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="health") as pool:
        while True:
            now = clock()
            try:
                items = _look(runtime, project, looked, changed)
            except AirpodsError as exc:  # the API went away for a moment: the feed reconnects too
                say(f"cannot look: {exc.message}")
                wait(LOOK_AGAIN)
                continue
            running = any(state.running or state.status in ("stopping", "restarting", "paused", "created")
                          for _, state, _ in items)
            held = _observe_all(runtime, ledger_path, items, now, alive, say, stopped)
            ever = ever or running
            idle_since = None if running or held else (now if idle_since is None else idle_since)
            if idle_since is not None and now - idle_since >= (idle_for if ever else min(idle_for, FRESH_END)):
                return
            wake = [(now + HELD_LOOK, "the end of a start at work")] if held else []
            if idle_since is not None:
                wake.append((idle_since + (idle_for if ever else min(idle_for, FRESH_END)),
                             "the end: nothing of the project runs"))
            pinned = [(svc, st) for svc, st, _ in items if st.running and pins_of(st)]
            touch_pins = _pin_toucher(pinned, busy, pool if parallel else None, key_of, say)
            if chore is not None and running:
                next_chore = _chore(chore, now, next_chore, busy, pool, say)
                wake.append((next_chore, chore[1]))
            if run_checks:
                wake += _run_due_checks(runtime, items, now, due, busy, pool if parallel else None, say)
            when, what = min(wake) if wake else (now + 3600.0, "an event")
            if report is not None:
                report(when, what if not pinned else f"{what}; touching pinned models every {PIN_EVERY:g} s")
            looked = {state.name: (service, state, policy) for service, state, policy in items}
            cutter.saw(items, now)
            got = _pin_rounds(wait, clock, when, touch_pins) if pinned else wait(max(0.0, when - clock()))
            changed = {e.name for e in got} if isinstance(got, list) and got and all(e.name for e in got) else set()


def _look(runtime: ContainerRuntime, project: str, looked: dict, changed: set[str]) -> list:
    """(service, state, policy) of each watched container: only those Podman's events named are
    inspected again when the last look had them all; else a list and an inspect of each (the first
    look, a due check, a lost stream, a container not seen before)."""
    if changed and looked and all(name in looked for name in changed):
        return [(svc, _inspected(runtime, st) if st.name in changed else st, policy)
                for svc, st, policy in looked.values()]
    return [(svc, _inspected(runtime, s), policy) for svc, s, policy in watched(runtime.list_managed(), project)]


def _observe_all(runtime: ContainerRuntime, ledger_path: Path, items: list, now: float, alive: Any, say: Any,
                 stopped: Any) -> list:
    """Count each container's restarts in the ledger and stop those given up on; returns the holds
    of live starts."""
    with Ledger.locked(ledger_path) as ledger:
        held = live_holds(ledger, now, alive)
        for service, state, policy in items:
            obs = observe(ledger, service, state, policy, now)
            if obs.message:
                say(obs.message)
            if obs.stop and stopped is not None:
                stopped(state.name)  # on purpose, as `airpods stop` records it (a 137 is no crash)
            if obs.stop:
                halt(runtime, state)
    return held


def _run_due_checks(runtime: ContainerRuntime, items: list, now: float, due: dict, busy: dict, pool: Any,
                    say: Any) -> list[tuple[float, str]]:
    """Run the health checks that are due (in `pool`'s threads; in turn when it is None) and say when
    each running container's next one is."""
    wake = []
    for service, state, policy in items:
        if not state.running:
            continue
        slot = f"{state.id or state.name} {state.labels[LABEL_HEALTH]}"  # a recreated one: its own schedule
        when = due.setdefault(slot, now + policy.interval)
        if now >= when and not (busy.get(state.name) and not busy[state.name].done()):
            if pool is not None:
                busy[state.name] = pool.submit(_check, runtime, state.name, say)
            else:
                _check(runtime, state.name, say)
            due[slot] = when = max(when + policy.interval, now)  # on its interval, not the tick's
        wake.append((max(when, now + 0.05), f"health check of {service}"))
    return wake


def _pin_toucher(pinned: list, busy: dict, pool: Any, key_of: Any, say: Any) -> Any:
    """What touches routers' pinned models (so that they are never the least recently used): each
    in the pool, one at a time per model; nothing without a pool (a test's clock)."""
    def touch_pins() -> None:
        for service, state in pinned:
            url = published_base(state)
            for model in pins_of(state) if url else ():
                job = f"pin {state.name} {model}"
                if pool is not None and not (busy.get(job) and not busy[job].done()):
                    busy[job] = pool.submit(_touch, url, model, key_of(service), say)
    return touch_pins


def _chore(chore: tuple[float, str, Any], now: float, due: float, busy: dict, pool: Any, say: Any) -> float:
    """Run the chore when it is due (unless the last one is still at work); when it is due next."""
    every, what, job = chore
    if now < due:
        return due
    if not (busy.get("chore") and not busy["chore"].done()):
        def run() -> None:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a chore's failure is said and tried again later
                say(f"{what}: {getattr(exc, 'message', None) or exc}")
        busy["chore"] = pool.submit(run)
    return now + every


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
        if event.at <= at:  # before the look: its restart count holds it
            return
        times = [t for t in self.crashes.get(event.name, []) if t > at] + [event.at]
        self.crashes[event.name] = times
        crashes = len(times)
        with Ledger.locked(self.ledger_path) as ledger:
            rec = ledger.records.get(service)
            if (rec is None or rec.gave_up or rec.hold_until > event.at
                    or (state.id and rec.container_id and rec.container_id != state.id)):
                return
            # the restart count the look saw already holds the crashes before it: only later ones
            row = rec.in_a_row + crashes - 1
            if row < policy.max_restarts:
                return
            rec.last_restart = event.at
            rec.restarts += crashes - 1
            rec.in_a_row = row
            reason = give_up(rec, event.at, f"the process exited again (code {event.exit_code})", policy)
        self.say(f"{service} stopped: {reason}")
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

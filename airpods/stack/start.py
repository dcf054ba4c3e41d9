"""A start as the stack makes it: the host lock, the memory and VRAM preflight bound to this
machine's probes, the health ledger's hold on what it touches, the watcher left running before
anything starts, and the count each service gets after it (orchestrate/start.py does the Podman
work). The reporter it is given says the stages; this module prints nothing."""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

from airpods.orchestrate.events import Reporter
from airpods.orchestrate.start import Outcome


class StartOptions(NamedTuple):
    timeout: float | None = None  # the health wait per service (None: its health.timeout)
    wait: bool = True  # False: start and return (--no-wait)
    force: bool = False  # over the memory estimate: warn instead of refusing
    recreate: bool = False  # also recreate running containers whose machine plan differs


def start(stack: Any, specs: dict, selected: list[str], opts: StartOptions, reporter: Reporter) -> list[Outcome]:
    """Start `selected` (and what they depend on) and, unless opts.wait is False, wait until they
    are healthy. Dependencies start too: every checked service this start may touch is held while
    it works, and those it (re)started get a new count after it. The watcher is there before
    anything starts (a crash loop after --no-wait is counted from its first exit; a start killed
    midway leaves it watched, and its hold ends with its process)."""
    from airpods.orchestrate import stops
    from airpods.orchestrate.lock import HostLock
    from airpods.orchestrate.start import start as start_services
    from airpods.orchestrate.start import start_order
    from airpods.paths import lock_path, stops_path
    from airpods.stack.hub import check_trust

    check_trust(stack, specs, [n for wave in start_order(specs, selected) for n in wave])
    runtime, settings = stack.runtime, stack.runtime_settings
    lock = HostLock(lock_path(stack.environ),
                    on_wait=lambda: reporter.info("waiting for another airpods start to finish creating"))
    network = next(iter(specs.values())).network if specs else settings["network"]  # the specs': one network
    watched = [n for wave in start_order(specs, selected) for n in wave if specs[n].health.check]
    before, after, outcomes = {n: runtime.inspect(specs[n].container) for n in watched}, {}, []
    project = specs[watched[0]].project if watched else stack.project
    if watched:
        _hold(stack, project, watched)
        if getattr(runtime, "shared", False):
            from airpods.stack.watcher import spawn

            spawn(stack, project)
    released: set[str] = set()

    def release(service: str, container_id: str) -> None:
        if service in watched:
            _release(stack, project, service, container_id)
            released.add(service)

    try:
        outcomes = start_services(runtime, specs, selected, reporter, network=network,
                                  models_volume=settings["models_volume"], timeout=opts.timeout, wait=opts.wait,
                                  lock=lock, memory_check=memory_checker(stack, specs, opts.force),
                                  recreate=opts.recreate, stops=lambda: stops.stopped_at(stops_path(stack.environ)),
                                  released=release)
    finally:
        if watched:
            after = {n: runtime.inspect(specs[n].container) for n in watched if n not in released}
            _new_chance(stack, project, after, before, {o.service for o in outcomes})
    from airpods.stack.hub import after_start

    after_start(stack, specs, reporter)  # the hub routes to what runs now
    _record_loads(stack, specs, outcomes)
    return outcomes


def _record_loads(stack: Any, specs: dict, outcomes: list) -> None:
    """What each llama.cpp service it made healthy holds now, beside its estimate (bench/loads.py);
    a record that cannot be written is no reason to fail a start."""
    import contextlib

    from airpods.bench.loads import record
    from airpods.errors import AirpodsError

    with contextlib.suppress(OSError, AirpodsError):
        record(stack.environ, stack.runtime, specs, outcomes)


def _hold(stack: Any, project: str, services: list[str]) -> None:
    """Before a start: a watcher still running keeps its hands off these services meanwhile."""
    from airpods.health.supervisor import Ledger, hold
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(stack.environ, project)) as ledger:
        hold(ledger, services, time.time(), holder=os.getpid())


def _release(stack: Any, project: str, service: str, container_id: str) -> None:
    """Just before an unwaited start (--no-wait): the watcher counts this container's restarts
    from Podman's 0 on, and may stop it, from its first exit (a crash loop is ~10 a second)."""
    from airpods.health.supervisor import Ledger, Record
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(stack.environ, project)) as ledger:
        ledger.records[service] = Record(container_id)


def _new_chance(stack: Any, project: str, after: dict, before: dict, done: set[str]) -> None:
    """After a start: those it (re)started end a row of restarts (a service the watcher stopped)
    and are counted from here (from Podman's 0, for those it started and did not fail: `done`);
    the others are the watcher's again, as they were."""
    from airpods.health.supervisor import Ledger, forget
    from airpods.paths import health_ledger

    with Ledger.locked(health_ledger(stack.environ, project)) as ledger:
        started = {n: s for n, s in after.items()
                   if s is None or before.get(n) is None or s.id != before[n].id
                   or s.started_at != before[n].started_at}
        forget(ledger, started, {n for n in started if n in done})
        for name in set(after) - set(started):
            if name in ledger.records:
                ledger.records[name].hold_until = 0.0


def memory_checker(stack: Any, specs: dict, force: bool):
    """The memory preflight for orchestrate.start, bound to this machine's probes."""
    from airpods.orchestrate.memory_check import check_memory
    from airpods.probes.memory import free_vram

    settings, mem = stack.runtime_settings, stack.memory_info
    path = stack.environ.get("PATH", "")

    def check(todo: list) -> tuple[dict, list[str]]:
        reports, warnings = check_memory(stack.runtime, specs, todo, models_volume=settings["models_volume"],
                                         budget_setting=settings.get("memory_budget", "auto"),
                                         memory_total=mem.total, memory_source=mem.source, force=force,
                                         vram_for=lambda variant: free_vram(variant, path), kept=stack.facts_cache)
        planned = [s for s in todo if s.vram]
        if not planned:
            return reports, warnings
        from airpods.orchestrate.vram_check import check_vram

        running = [s for s in planned if (state := stack.runtime.inspect(s.container)) is not None and state.running]
        return reports, warnings + check_vram(planned, stack.gpu_inventory, force=force, released=running)

    return check


def remember_failures(stack: Any, specs: dict, exc: Exception) -> None:
    """A start that failed: an out-of-memory kill is recorded for `status` (until the next good start)."""
    from airpods.errors import ServiceExited
    from airpods.orchestrate import failures
    from airpods.paths import failures_path

    for e in [exc, *getattr(exc, "causes", [])]:
        if isinstance(e, ServiceExited) and e.out_of_memory:
            failures.record(failures_path(stack.environ), e.service, specs[e.service].spec_hash,
                            "out of memory", [e.message, *e.details[:2]])


def forget_failures(stack: Any, outcomes: list[Outcome]) -> None:
    """A good start: the failures recorded for these services are over."""
    from airpods.orchestrate import failures
    from airpods.paths import failures_path

    failures.clear(failures_path(stack.environ), [o.service for o in outcomes])

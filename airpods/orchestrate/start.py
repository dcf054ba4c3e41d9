"""Start: plan (noop/create/start/recreate) → preflight → converge → wait for health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from airpods.errors import AirpodsError, RuntimeFailure, ServiceExited, StartFailure, UsageError
from airpods.health.probe import HealthResult, probe_all
from airpods.health.wait import Done, Pending, WaitCancelled, WaitTimeout, wait_for
from airpods.kinds import kind_of
from airpods.orchestrate.events import Reporter
from airpods.orchestrate.exit_reasons import exit_error, log_tail
from airpods.orchestrate.host_files import write_config_files, write_preset
from airpods.orchestrate.lock import NoLock
from airpods.orchestrate.preflight import check_drafts, check_gateway, check_models, check_pooling, check_ports
from airpods.orchestrate.running import foreign_objects, keeps_ports, renamed_in_project
from airpods.orchestrate.stops import on_purpose
from airpods.plan.order import closure, dependencies, waves
from airpods.plan.spec import LABEL_CONFIG_HASH, LABEL_HASH, ServiceSpec
from airpods.runtime.port import ContainerRuntime, ContainerState

if TYPE_CHECKING:
    from airpods.orchestrate.memory_check import FitReport

# While a service starts: its health URL every 20 ms at most (a GET costs it next to nothing), its
# container's state 10 ms after the start and then less often, up to every 100 ms (an inspect costs
# Podman a few ms of CPU the model load could use; early reads catch a crash's exit code before a
# restart policy starts it again).
# What a start is given by its caller (stack/start.py), typed:
MemoryCheck = Callable[[list[ServiceSpec]], tuple[dict[str, "FitReport"], list[str]]]  # todo -> ({service: FitReport},
# warnings); raises to refuse an over-budget start
Stops = Callable[[], dict[str, float]]  # {container: when airpods stopped it}
Released = Callable[[str, str], None]  # (service, container id) about to start unwaited

HEALTH_POLL_CAP = 0.02
STATE_EVERY = 0.1


class ActionKind(StrEnum):
    """What a start does to one service's container."""

    CREATE = "create"  # none yet
    RECREATE = "recreate"  # its spec or config hash differs, or a start was interrupted half-way
    START = "start"  # made already, stopped
    NOOP = "noop"  # running as it should


@dataclass(frozen=True)
class Action:
    service: str
    kind: ActionKind
    reason: str
    pod_exists: bool = False  # the pod (conmon) holds its host ports, running or not: they are its own


@dataclass
class Outcome:
    service: str
    action: str
    state: str
    url: str | None
    seconds: float | None = None  # time to healthy
    health: str = ""


def plan_action(spec: ServiceSpec, state: ContainerState | None, pod_exists: bool,
                recreate: bool = False) -> Action:
    """What to do with one service. A container whose configuration is unchanged but whose machine
    plan (GPU variant, CPU plan: probe results) would differ is left alone unless `recreate`."""
    if state is None:
        return Action(spec.name, ActionKind.CREATE, "not created yet" + (" (stale pod)" if pod_exists else ""),
                      pod_exists=pod_exists)
    if state.labels.get(LABEL_HASH) != spec.spec_hash:
        if not spec.config_hash or state.labels.get(LABEL_CONFIG_HASH) != spec.config_hash:
            return Action(spec.name, ActionKind.RECREATE, "configuration changed", pod_exists)
        if recreate or not state.running:  # a stopped one loses nothing: give it today's plan
            return Action(spec.name, ActionKind.RECREATE, "the machine plan changed", pod_exists)
    if state.running:
        return Action(spec.name, ActionKind.NOOP, "already running", pod_exists)
    return Action(spec.name, ActionKind.START, f"container is {state.status}", pod_exists)


def plan(runtime: ContainerRuntime, specs: dict[str, ServiceSpec], names: list[str],
         recreate: bool = False) -> list[Action]:
    return [plan_action(specs[n], runtime.inspect(specs[n].container), runtime.pod_exists(specs[n].pod), recreate)
            for n in names]


def check_foreign(runtime: ContainerRuntime, specs: list[ServiceSpec]) -> None:
    """Refuse (exit 2, nothing created) when a pod or container name this config would use belongs
    to another project or is not airpods' at all: a start never removes what is not its own."""
    found = [(s, what) for s in specs for what in foreign_objects(runtime, s)]
    if found:
        s = found[0][0]
        raise UsageError(
            f"service '{s.name}': its pod or container name is taken by objects that are not this project's "
            f"('{s.project}'); nothing was created",
            details=[f"services.{x.name}: {what}" for x, what in found],
            hint=f"give it other names (services.{s.name}.pod = \"{s.pod}-{s.project}\"), or stop that other "
                 "stack with its own config")


def start_order(specs: dict[str, ServiceSpec], selected: list[str]) -> list[list[str]]:
    deps = dependencies(specs)
    return waves(closure(selected, deps), deps)


def ensure_images(runtime: ContainerRuntime, specs: list[ServiceSpec], reporter: Reporter) -> None:
    missing = [s for s in specs if not runtime.image_exists(s.image)]
    if missing:
        from airpods.orchestrate.pull import pull_all

        failures = pull_all(runtime, missing, reporter)
        if failures:
            raise RuntimeFailure("could not get the images to start", hint=(
                "check the registry is reachable, or build/load the image locally and point "
                "services.<name>.images.<variant> at it"), details=failures)


def create(runtime: ContainerRuntime, spec: ServiceSpec, action: Action) -> None:
    """Make the pod and container exist as the spec says (not started). Runs under the lock."""
    if kind_of(spec.kind).door:  # even when it runs: Caddy reloads a changed Caddyfile by itself
        from airpods.gateway.keys import KeyStore

        KeyStore.of(spec).write_config(spec.gateway_config)
    write_config_files(spec)  # Prometheus' scrape configuration; a changed one changes the spec's hash
    if action.kind == ActionKind.NOOP:
        return
    if spec.router is not None:
        write_preset(spec)  # its bind mount must exist whenever the container starts
    if action.kind == ActionKind.START:
        return
    runtime.remove_pod(spec.pod)  # recreate, or our own pod left without its container; volumes stay
    old = runtime.inspect(spec.container)  # this project's container under the same name, in a renamed pod
    if old is not None:
        if old.pod:
            runtime.remove_pod(old.pod)
        runtime.remove_container(spec.container)
    for volume in spec.volumes:
        if volume.is_named:
            runtime.ensure_volume(volume.source, spec.resource_labels)
    runtime.create_pod(spec)
    runtime.create_container(spec)


def startup_models(runtime: ContainerRuntime, spec: ServiceSpec, reporter: Reporter,
                   started: float) -> Done[float] | Pending:
    """A router is ready when every load_on_startup (and pinned) model is loaded; one that failed fails the start."""
    from airpods.health.router_api import list_models

    assert spec.router is not None
    wanted = [m.id for m in spec.router.models if m.load_on_startup or m.pin]
    if not wanted:
        return Done(time.monotonic() - started)
    states = {m.id: m for m in list_models(spec.base_url or "", spec.env.get("LLAMA_API_KEY")) or []}
    failed = [i for i in wanted if i in states and states[i].state == "failed"]
    if failed:
        raise ServiceExited(f"service '{spec.name}': model {failed[0]} failed to load (exit code "
                            f"{states[failed[0]].exit_code})",
                            details=[f"last log lines of {spec.container}:", *log_tail(runtime, spec.container)],
                            hint=f"see airpods logs {spec.name}; check services.{spec.name}.models.{failed[0]}")
    pending = [i for i in wanted if i not in states or states[i].state != "loaded"]
    if not pending:
        return Done(time.monotonic() - started)
    text = f"model {pending[0]}: {states[pending[0]].state if pending[0] in states else 'waiting'}"
    reporter.stage(spec.name, text, time.monotonic() - started)
    return Pending(text)


def wait_healthy(runtime: ContainerRuntime, spec: ServiceSpec, reporter: Reporter, timeout: float,
                 started: float, memory: FitReport | None = None, cancel: threading.Event | None = None,
                 stops: Stops | None = None, restarts: int | None = None) -> float:
    """Poll health over HTTP and the container's state together; a crash fails at once.
    `memory` (a FitReport) explains an out-of-memory kill with the estimate and the limit."""
    if restarts is None:  # the restart count before the start (a restart policy may act at once)
        initial = runtime.inspect(spec.container)
        restarts = initial.restart_count if initial else 0
    since = time.time()
    next_look, gap = 0.0, 0.01  # when the container's state is read next, and the gap after that

    def fail_if_gone(state: ContainerState | None) -> None:
        if state is None or not state.running or state.restart_count > restarts:
            restarted = state is not None and state.restart_count > restarts and state.running
            if stops is not None and state is not None and on_purpose(state, stops(), since):
                raise ServiceExited(f"service '{spec.name}' was stopped during startup (airpods stop)",
                                    hint=f"start it again: airpods start {spec.name}", service=spec.name)
            raise exit_error(runtime, spec, state, restarted, memory)

    def check() -> Done[float] | Pending:
        nonlocal next_look, gap
        if time.monotonic() >= next_look:
            next_look, gap = time.monotonic() + gap, min(gap * 1.6, STATE_EVERY)
            fail_if_gone(runtime.inspect(spec.container))
        if not spec.health_urls:
            return Done(time.monotonic() - started)
        result: HealthResult = probe_all(spec.health_urls, spec.health.expected_status, timeout=1.0,
                                         headers=spec.probe_headers)
        if result.healthy and spec.router is not None:
            return startup_models(runtime, spec, reporter, started)
        if result.healthy:
            return Done(time.monotonic() - started)
        text = result.describe()
        reporter.stage(spec.name, text, time.monotonic() - started)
        return Pending(text)

    try:
        return wait_for(check, timeout=timeout, cancel=cancel, cap=HEALTH_POLL_CAP)
    except WaitTimeout as exc:
        raise StartFailure(
            f"service '{spec.name}' was not healthy after {timeout:g}s (last: {exc.last.detail})",
            details=[f"last log lines of {spec.container}:", *log_tail(runtime, spec.container)],
            hint=(f"it keeps running: watch `airpods logs -f {spec.name}`, give it longer with "
                  f"--timeout or services.{spec.name}.health.timeout, or `airpods stop {spec.name}`")
        ) from exc


def start_one(runtime: ContainerRuntime, spec: ServiceSpec, action: Action, reporter: Reporter, *,
              timeout: float | None, wait: bool, memory: FitReport | None = None,
              cancel: threading.Event | None = None, stops: Stops | None = None,
              released: Released | None = None) -> Outcome:
    """Start one created service and wait for it; `cancel` ends the wait (another one failed).
    `released(service, container id)`: told just before a start that will not be waited on."""
    started = time.monotonic()
    reporter.stage(spec.name, {"noop": "already running", "start": "starting container",
                               "create": "starting container", "recreate": "starting container (recreated)"}
                   [action.kind], 0.0)
    before = runtime.inspect(spec.container)
    if not wait and released is not None and action.kind != ActionKind.NOOP and before is not None:
        released(spec.name, before.id)  # nobody waits on it: the watcher counts from its first exit
    if action.kind != ActionKind.NOOP:
        _start_or_converge(runtime, spec, reporter, memory)
    if not wait:
        return Outcome(spec.name, action.kind, "running", spec.url, None, "not waited")
    try:
        seconds = wait_healthy(runtime, spec, reporter, timeout or spec.health.timeout, started, memory, cancel,
                               stops, before.restart_count if before else 0)
    except WaitCancelled:
        return Outcome(spec.name, action.kind, "running", spec.url, None, "not waited (another service failed)")
    except ServiceExited:
        # Do not leave a crash loop behind (a timeout keeps running). The restart policy may be
        # restarting it just as the stop lands: stop until it stays stopped.
        for _ in range(3):
            runtime.stop_pod(spec.pod, 2)
            state = runtime.inspect(spec.container)
            if state is None or not state.running:
                break
        raise
    if action.kind == ActionKind.NOOP:
        reporter.stage(spec.name, "already running, healthy", seconds)
        return Outcome(spec.name, action.kind, "running", spec.url, None, "healthy (already running)")
    reporter.stage(spec.name, "healthy", seconds)
    return Outcome(spec.name, action.kind, "running", spec.url, seconds, "healthy")


def _start_or_converge(runtime: ContainerRuntime, spec: ServiceSpec, reporter: Reporter,
                       memory: FitReport | None) -> None:
    """Start the container. One that a start interrupted by the Podman API's death left half-made
    (the OCI runtime has its state, Podman's record does not: "container with given ID already
    exists", measured on Podman 4.3 by killing the API service as conmon appeared) is ours to
    converge: running after all, it is taken as it is; else it is made again and started."""
    try:
        runtime.start_container(spec.container)
        return
    except RuntimeFailure as exc:
        if "already exists" not in exc.message:
            raise
    state = runtime.inspect(spec.container)
    if state is not None and state.running:
        return
    reporter.stage(spec.name, "making again what an interrupted start left half-made", 0.0)
    stamped = replace(spec, memory_estimate=memory.estimate.total) if memory is not None else spec
    create(runtime, stamped, Action(spec.name, ActionKind.RECREATE, "half-made by an interrupted start"))
    runtime.start_container(spec.container)


def prepare(runtime: ContainerRuntime, specs: dict[str, ServiceSpec], names: list[str], reporter: Reporter, *,
            network: str, models_volume: str, memory_check: MemoryCheck | None, recreate: bool) -> tuple[dict, dict]:
    """Plan → preflight → create, as one step under the caller's lock: nothing is created unless
    every check passes, and a concurrent start then sees these containers (and their memory
    estimates) as this project's. Returns ({service: Action}, {service: FitReport})."""
    actions = {a.service: a for a in plan(runtime, specs, names, recreate)}
    todo = [specs[n] for n in names if actions[n].kind != ActionKind.NOOP]
    check_foreign(runtime, todo)
    renamed = renamed_in_project(runtime, todo)
    check_ports([specs[a.service] for a in actions.values() if not a.pod_exists and a.kind != ActionKind.NOOP
                 and not keeps_ports(specs[a.service], renamed.get(a.service))],
                rootless=runtime.limit_support().rootless)
    for message in [*check_gateway(todo), *check_models(todo, runtime, models_volume)]:
        reporter.warning(message)
    check_pooling(todo, runtime, models_volume)
    check_drafts(todo, runtime, models_volume)
    reports, warnings = memory_check(todo) if memory_check else ({}, [])
    for message in warnings:
        reporter.warning(message)
    ensure_images(runtime, todo, reporter)
    for service, old in renamed.items():  # this project's own container under its former name
        reporter.stage(service, f"replacing {old.pod or old.container} (renamed)", 0.0)
        if old.pod:
            runtime.remove_pod(old.pod)
        else:
            runtime.remove_container(old.container)
    for name in dict.fromkeys(s.network for s in todo) or [network]:  # the specs' network (one source)
        runtime.ensure_network(name, todo[0].resource_labels if todo else None)
    for spec in todo:
        report = reports.get(spec.name)
        stamped = replace(spec, memory_estimate=report.estimate.total) if report is not None else spec
        action = actions[spec.name]
        reporter.stage(spec.name, {"start": "preparing", "create": "creating pod",
                                   "recreate": f"recreating ({action.reason})"}[action.kind], 0.0)
        create(runtime, stamped, action)
    for name in names:  # a running gateway gets today's Caddyfile too (routes of services added since)
        if actions[name].kind == ActionKind.NOOP and kind_of(specs[name].kind).door:
            create(runtime, specs[name], actions[name])
    return actions, reports


def _run_wave(wave: list[str], submit: Any, cancel: threading.Event,
              ) -> tuple[list[Outcome], list[tuple[str, AirpodsError]]]:
    """Start a wave's services together; the first failure cancels the others' waits at once,
    and so does Ctrl-C (the pool is not joined on a wait that cannot end)."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(wave)))
    futures = {submit(pool, n): n for n in wave}
    outcomes: list[Outcome] = []
    errors: list[tuple[str, AirpodsError]] = []
    try:
        for future in as_completed(futures):
            try:
                outcomes.append(future.result())
            except AirpodsError as exc:
                errors.append((futures[future], exc))
                cancel.set()
    except BaseException:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes, errors


def start(runtime: ContainerRuntime, specs: dict[str, ServiceSpec], selected: list[str], reporter: Reporter, *,
          network: str, models_volume: str, timeout: float | None = None, wait: bool = True,
          lock: AbstractContextManager[Any] | None = None, memory_check: MemoryCheck | None = None,
          recreate: bool = False, stops: Stops | None = None, released: Released | None = None) -> list[Outcome]:
    """`lock` (a HostLock) is held while planning, checking and creating, never while waiting.
    `memory_check(todo)` → ({service: FitReport}, warnings) refuses over-budget starts (raises).
    `stops()` → {container: when airpods stopped it}: a SIGKILL it sent is not "out of memory".
    `released(service, container id)`: a service about to start unwaited (see start_one)."""
    order = start_order(specs, selected)
    names = [n for wave in order for n in wave]
    extra = [n for n in names if n not in selected]
    if extra:
        reporter.info(f"also starting dependencies: {', '.join(extra)}")
    with lock or NoLock():
        actions, reports = prepare(runtime, specs, names, reporter, network=network, models_volume=models_volume,
                                   memory_check=memory_check, recreate=recreate)
    outcomes: list[Outcome] = []
    cancel = threading.Event()
    for wave in order:
        def submit(pool: ThreadPoolExecutor, n: str) -> Any:
            return pool.submit(start_one, runtime, specs[n], actions[n], reporter, timeout=timeout, wait=wait,
                               memory=reports.get(n), cancel=cancel, stops=stops, released=released)

        done, failed = _run_wave(wave, submit, cancel)
        outcomes += done
        for name, _ in failed:
            reporter.stage(name, "failed", 0.0)
        errors = [e for _, e in failed]
        if errors:
            if len(errors) == 1:
                raise errors[0]
            failure = StartFailure(f"{len(errors)} services failed to start",
                                   details=[line for e in errors for line in [e.message, *e.details]])
            failure.causes = errors
            raise failure
    return outcomes

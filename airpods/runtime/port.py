"""The runtime port: the narrow set of verbs airpods needs from a container engine, and the
typed state it returns. The podman-py adapter and the in-memory fake both implement it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from airpods.plan.spec import Confinement, ServiceSpec
from airpods.probes.cgroups import LimitSupport

# Exit codes that mean "stopped on purpose" (0, SIGTERM, SIGKILL after the stop timeout).
STOP_EXIT_CODES = (0, 143, 137)


@dataclass(frozen=True)
class HealthRun:
    """One run of a container's health check, as Podman logged it."""

    at: float  # epoch seconds it started
    exit_code: int  # 0 healthy, else failed
    output: str  # what the check printed (our checks say why they failed)


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # podman's raw status: created, running, exited, stopped, paused, ...
    exit_code: int | None = None
    image: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds
    pod: str | None = None
    restart_count: int = 0
    oom_killed: bool = False  # the kernel killed it for memory (inspect State.OOMKilled)
    infra: bool = False  # a pod's infra container: it carries the pod's labels but is no service
    id: str = ""  # the engine's container id (64 hex), where it said
    health: str = ""  # Podman's health status: starting | healthy | unhealthy ("" : no check)
    health_log: tuple[HealthRun, ...] = ()  # the last checks Podman kept, oldest first
    ports: tuple[tuple[str, int, int], ...] = ()  # (host ip, host port, container port) Podman publishes now
    image_id: str = ""  # the image it was made from, by id
    unproven: bool = False  # it carried airpods' labels without this user's seal: they were dropped
    confinement: Confinement | None = None  # what it was given (inspect; None from a listing)
    pid: int = 0  # its main process on the host (inspect), 0 when not running

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def state(self) -> str:
        """running | stopped | exited (crashed: a non-zero exit that was not a stop)."""
        if self.running:
            return "running"
        if self.oom_killed or (self.status == "exited" and self.exit_code not in (None, *STOP_EXIT_CODES)):
            return "exited"
        return "stopped"

    def judged(self, on_purpose: bool) -> str:
        """`state`, with a SIGKILL (137) that airpods did not send counted as a crash: the kernel
        killed it (out of memory, on hosts where OOMKilled is never set)."""
        if self.status == "exited" and self.exit_code == 137 and not on_purpose:
            return "exited"
        return self.state


@dataclass(frozen=True)
class ContainerUsage:
    """CPU and memory counters of a running container at one moment; CPU % comes from two of them."""

    cpu_ns: int  # CPU time used since it started
    at_ns: int  # the engine's clock when read
    memory: int  # bytes in use (cgroup)

    def cpu_percent(self, before: ContainerUsage) -> float | None:
        """CPU use between two readings, in % of one core; None when they cannot be compared."""
        wall = self.at_ns - before.at_ns
        return None if wall <= 0 or self.cpu_ns < before.cpu_ns else 100.0 * (self.cpu_ns - before.cpu_ns) / wall


@dataclass(frozen=True)
class ContainerEvent:
    """One thing Podman says happened to a container (its event stream): a wake-up call, never
    evidence: whoever reacts inspects the container (an event carries its image's labels too)."""

    name: str
    action: str  # start | died | health_status | remove | ...
    at: float  # epoch seconds
    project: str = ""  # the io.airpods.project it claims (only to skip others' events early)
    exit_code: int | None = None  # a "died" event's containerExitCode


@dataclass(frozen=True)
class PullProgress:
    image: str
    status: str
    layer: str | None = None
    current: int | None = None
    total: int | None = None
    error: str | None = None


class ContainerRuntime(Protocol):
    def ping(self) -> str: ...  # engine version
    def limit_support(self) -> LimitSupport: ...  # which of cpuset/memory/cpu limits it enforces
    def ensure_network(self, name: str, labels: dict[str, str] | None = None) -> bool: ...  # True: created
    def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> bool: ...
    def volume_exists(self, name: str) -> bool: ...
    def volume_path(self, name: str) -> str | None: ...  # host mountpoint, when local
    def volume_labels(self, name: str) -> dict[str, str] | None: ...  # None: no such volume
    def remove_volume(self, name: str) -> bool: ...  # only `airpods clean --volumes` calls this
    def image_exists(self, ref: str) -> bool: ...
    def image_labels(self, ref: str) -> dict[str, str] | None: ...  # None: no such image
    def pull(self, ref: str) -> Iterator[PullProgress]: ...  # raises RuntimeFailure on error
    def pod_exists(self, name: str) -> bool: ...
    def pod_labels(self, name: str) -> dict[str, str] | None: ...  # None: no such pod
    def create_pod(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None: ...  # labels: spec.labels
    def remove_pod(self, name: str) -> None: ...  # with its containers; never volumes
    def stop_pod(self, name: str, timeout: int, infra_first: bool = False) -> None: ...  # infra_first: a crash loop
    def create_container(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None: ...
    def start_container(self, name: str) -> None: ...
    def remove_container(self, name: str) -> None: ...
    def inspect(self, name: str) -> ContainerState | None: ...
    def logs(self, name: str, *, tail: int | None = None, follow: bool = False,
             timestamps: bool = False) -> Iterator[str]: ...  # timestamps: each line starts with RFC 3339
    def list_managed(self) -> list[ContainerState]: ...
    def memory_usage(self, name: str) -> int | None: ...  # bytes now, None when the engine cannot say
    def memory_peak(self, name: str) -> int | None: ...  # the most it used since it started (cgroup), or None
    def resource_usage(self, names: list[str]) -> dict[str, ContainerUsage]: ...  # running ones the engine can measure
    def run_healthcheck(self, name: str) -> str: ...  # run its check now: healthy | unhealthy | starting
    def stop_container(self, name: str, timeout: int) -> None: ...  # stopped on purpose (no restart)
    def signal_container(self, name: str, signal: str) -> None: ...  # e.g. SIGUSR2: the hub's HAProxy reloads
    def put_secret(self, name: str, value: str) -> None: ...  # Podman's secret store; replaces an older value
    def events(self, since: float | None = None) -> Iterator[ContainerEvent]: ...  # managed containers' events,
    # from `since` (epoch) on, as they happen; blocks while nothing happens; raises RuntimeUnavailable when lost

"""An in-memory ContainerRuntime for unit tests: a dict of objects; tests assert its state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from airpods.errors import RuntimeFailure
from airpods.plan.spec import LABEL_MANAGED, ServiceSpec
from airpods.probes.cgroups import ALL, LimitSupport
from airpods.runtime.port import ContainerEvent, ContainerState, ContainerUsage, PullProgress


@dataclass
class FakePod:
    name: str
    spec: ServiceSpec | None
    running: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeRuntime:
    images: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    volumes: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pods: dict[str, FakePod] = field(default_factory=dict)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    specs: dict[str, ServiceSpec] = field(default_factory=dict)
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)  # images whose pull fails
    exit_on_start: dict[str, int] = field(default_factory=dict)  # container -> exit code
    version: str = "4.3.1-fake"
    url: str = "fake://in-memory"
    origin: str = "the in-memory fake"
    limits: LimitSupport = ALL
    cpusets: dict[str, str | None] = field(default_factory=dict)  # container -> cpuset it got
    usage: dict[str, int] = field(default_factory=dict)  # container -> memory in use (bytes)
    peaks: dict[str, int] = field(default_factory=dict)  # container -> the most it used (bytes)
    cpu_ns: dict[str, int] = field(default_factory=dict)  # container -> CPU time used (ns)
    oom_on_start: set[str] = field(default_factory=set)  # containers the "kernel" kills for memory
    vol_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    signals: list[tuple[str, str]] = field(default_factory=list)  # (container, signal) sent to running ones
    volume_root: Path | None = None  # when set, each volume is a real directory below it (like Podman's local driver)
    shared = False  # in this process's memory: no other process (the health watcher) can reach it
    restart_on_exit: set[str] = field(default_factory=set)  # containers a restart policy brings back at once
    unhealthy: dict[str, str] = field(default_factory=dict)  # container -> what its failing check prints
    streaks: dict[str, int] = field(default_factory=dict)  # container -> failed checks in a row
    stays_unhealthy: set[str] = field(default_factory=set)  # a restart does not mend these
    image_label_map: dict[str, dict[str, str]] = field(default_factory=dict)  # labels an image carries
    serial: int = 0  # the last container id given (ids are never given twice, as Podman's)
    event_log: list[ContainerEvent] = field(default_factory=list)  # what `events` streams (then it ends)

    def _new_id(self) -> str:
        self.serial += 1
        return f"{self.serial:064x}"

    def ping(self) -> str:
        return self.version

    def limit_support(self) -> LimitSupport:
        return self.limits

    def ensure_network(self, name: str, labels: dict[str, str] | None = None) -> bool:
        created = name not in self.networks
        self.networks.add(name)
        return created

    def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> bool:
        created = name not in self.volumes
        self.volumes.setdefault(name, {})
        if created:
            self.vol_labels[name] = dict(labels or {LABEL_MANAGED: "true"})
        return created

    def volume_labels(self, name: str) -> dict[str, str] | None:
        return self.vol_labels.get(name, {}) if name in self.volumes else None

    def volume_exists(self, name: str) -> bool:
        return name in self.volumes

    def volume_path(self, name: str) -> str | None:
        if self.volume_root is None or name not in self.volumes:
            return None
        path = self.volume_root / name / "_data"  # Podman's local driver layout
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def remove_volume(self, name: str) -> bool:
        return self.volumes.pop(name, None) is not None

    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def image_labels(self, ref: str) -> dict[str, str] | None:
        return dict(self.image_label_map.get(ref, {})) if ref in self.images else None

    def run_by_hand(self, name: str, image: str, labels: dict[str, str] | None = None, *, pod: str | None = None,
                    ports: tuple[tuple[str, int, int], ...] = ()) -> ContainerState:
        """What `podman run -d --name NAME [--label ...] IMAGE` makes: not airpods' doing, yet it
        carries the image's labels (Podman copies them), and whatever labels were given."""
        self.images.add(image)
        state = ContainerState(name, "running", image=image, labels={**self.image_label_map.get(image, {}),
                                                                      **(labels or {})},
                               pod=pod, started_at=time.time(), id=self._new_id(), ports=ports,
                               image_id=image)
        self.containers[name] = state
        return state

    def pull(self, ref: str) -> Iterator[PullProgress]:
        if ref in self.unreachable:
            raise RuntimeFailure(f"pulling {ref} failed: registry unreachable")
        yield PullProgress(ref, "Downloading", "layer1", 50, 100)
        yield PullProgress(ref, "Download complete", "layer1", 100, 100)
        self.images.add(ref)

    def pod_exists(self, name: str) -> bool:
        return name in self.pods

    def pod_labels(self, name: str) -> dict[str, str] | None:
        pod = self.pods.get(name)
        return None if pod is None else dict(pod.labels)

    def create_pod(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        if spec.pod in self.pods:
            raise RuntimeFailure(f"pod {spec.pod} already exists")
        if spec.network not in self.networks:
            raise RuntimeFailure(f"network {spec.network} does not exist")
        self.pods[spec.pod] = FakePod(spec.pod, spec, labels=dict(spec.labels if labels is None else labels))

    def remove_pod(self, name: str) -> None:
        self.pods.pop(name, None)
        for cname in [c for c, s in self.containers.items() if s.pod == name]:
            self.containers.pop(cname)
            self.specs.pop(cname, None)

    def stop_pod(self, name: str, timeout: int, infra_first: bool = False) -> None:
        if name in self.pods:
            self.pods[name].running = False
        for cname, state in self.containers.items():
            if state.pod == name and state.running:
                self.containers[cname] = replace(state, status="exited", exit_code=0, ports=())

    def create_container(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        if spec.container in self.containers:
            raise RuntimeFailure(f"container {spec.container} already exists")
        if spec.image not in self.images:
            raise RuntimeFailure(f"image {spec.image} not found")
        for vol in spec.volumes:
            if vol.is_named and vol.source not in self.volumes:  # Podman creates it, without labels
                self.volumes[vol.source] = {}
                self.vol_labels[vol.source] = {}
        given = spec.labels if labels is None else labels  # over the image's own, as Podman merges them
        self.containers[spec.container] = ContainerState(
            spec.container, "created", image=spec.image, labels={**self.image_label_map.get(spec.image, {}), **given},
            pod=spec.pod, id=self._new_id(), image_id=spec.image, confinement=spec.confinement)
        self.specs[spec.container] = spec
        self.cpusets[spec.container] = spec.cpuset if self.limits.enforces("cpuset") else None

    def start_container(self, name: str) -> None:
        state = self.containers[name]
        code = 137 if name in self.oom_on_start else self.exit_on_start.get(name)
        if code is not None and name in self.restart_on_exit:  # it died, and the restart policy brought it back
            self.containers[name] = replace(state, status="running", exit_code=code, started_at=time.time(),
                                            restart_count=state.restart_count + 1, ports=self._published(state.pod),
                                            oom_killed=name in self.oom_on_start)
            return
        if code is not None:
            self.containers[name] = replace(state, status="exited", exit_code=code,
                                            oom_killed=name in self.oom_on_start)
            return
        self.containers[name] = replace(state, status="running", exit_code=None, started_at=time.time(),
                                        ports=self._published(state.pod))
        if state.pod in self.pods:
            self.pods[state.pod].running = True

    def _published(self, pod: str | None) -> tuple[tuple[str, int, int], ...]:
        """A running pod member shows the pod's published ports (inspect's NetworkSettings.Ports)."""
        spec = self.pods[pod].spec if pod in self.pods else None
        return tuple((p.host_ip, p.host, p.container) for p in spec.ports) if spec is not None else ()

    def remove_container(self, name: str) -> None:
        self.containers.pop(name, None)
        self.specs.pop(name, None)

    def inspect(self, name: str) -> ContainerState | None:
        return self.containers.get(name)

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False,
             timestamps: bool = False) -> Iterator[str]:  # a test gives its lines with stamps when it needs them
        lines = self.log_lines.get(name, [])
        yield from (lines[-tail:] if tail else lines)

    def memory_peak(self, name: str) -> int | None:
        state = self.containers.get(name)
        return self.peaks.get(name, self.usage.get(name)) if state is not None else None

    def memory_usage(self, name: str) -> int | None:
        state = self.containers.get(name)
        return self.usage.get(name) if state is not None and state.running else None

    def resource_usage(self, names: list[str]) -> dict[str, ContainerUsage]:
        """From `cpu_ns` and `usage`, for running containers; the clock is the test's monotonic one."""
        import time

        return {n: ContainerUsage(self.cpu_ns.get(n, 0), time.monotonic_ns(), self.usage.get(n, 0)) for n in names
                if n in self.containers and self.containers[n].running}

    def list_managed(self) -> list[ContainerState]:
        """As Podman lists them: each pod's infra container too, with the pod's labels."""
        infra = [ContainerState(f"{p.name}-infra", "running" if p.running else "created", labels=dict(p.labels),
                                pod=p.name, infra=True) for p in self.pods.values()]
        return [s for s in [*self.containers.values(), *infra] if s.labels.get(LABEL_MANAGED) == "true"]

    def run_healthcheck(self, name: str) -> str:
        """As Podman 4.3 does: log the run; after `retries` failures in a row restart it (the
        streak is not reset by the restart, as Podman's is not)."""
        from airpods.runtime.port import HealthRun

        state, spec = self.containers[name], self.specs.get(name)
        if not state.running or spec is None or not spec.health.check:
            raise RuntimeFailure(f"health check {name}: container is not running or has no check")
        output = self.unhealthy.get(name)
        self.streaks[name] = self.streaks.get(name, 0) + 1 if output is not None else 0
        run = HealthRun(time.time(), 0 if output is None else 1, output or "")
        status = "healthy" if output is None else ("unhealthy" if self.streaks[name] >= spec.health.retries
                                                   else "starting")
        state = replace(state, health=status, health_log=(*state.health_log, run)[-5:])
        if status == "unhealthy":  # on-failure = restart: a new process, healthy unless told otherwise
            if name not in self.stays_unhealthy:
                self.unhealthy.pop(name, None)
            state = replace(state, started_at=max(time.time(), (state.started_at or 0) + 1), health="starting")
        self.containers[name] = state
        return status

    def stop_container(self, name: str, timeout: int) -> None:
        state = self.containers.get(name)
        if state is not None and state.running:
            self.containers[name] = replace(state, status="exited", exit_code=0, ports=())

    def signal_container(self, name: str, signal: str) -> None:
        state = self.containers.get(name)
        if state is not None and state.running:
            self.signals.append((name, signal))

    def put_secret(self, name: str, value: str) -> None:
        self.secrets[name] = value

    def events(self, since: float | None = None) -> Iterator[ContainerEvent]:
        """The events a test put in `event_log` from `since` on; then the stream ends, as a lost one."""
        from airpods.errors import RuntimeUnavailable

        yield from (e for e in list(self.event_log) if since is None or e.at >= since)
        raise RuntimeUnavailable("the fake's event stream ended")

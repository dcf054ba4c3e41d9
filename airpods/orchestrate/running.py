"""What runs is the truth: the services of one project as Podman has them, read back from the
labels every container was created with (plan/spec.py `labels`), not re-derived from today's
config. `status`, `stop`, `clean`, `logs` and the memory check's "what is running" start here, so
a renamed, removed or disabled service's objects are still found, and stop and clean work with a
config that no longer validates."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.config.project import project_of
from airpods.plan.spec import (
    LABEL_CONFIG_HASH,
    LABEL_DEPENDS,
    LABEL_HASH,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_MEMORY,
    LABEL_MODEL,
    LABEL_PORTS,
    LABEL_SERVICE,
    LABEL_STOP_TIMEOUT,
    LABEL_URL,
    LABEL_VOLUMES,
    LABEL_VRAM,
    ServiceSpec,
)
from airpods.runtime.port import ContainerRuntime, ContainerState


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def _vram(value: str | None) -> tuple[tuple[int, int], ...]:
    """"0:123,1:456" -> ((0, 123), (1, 456)); what does not parse is left out."""
    out = []
    for item in _list(value):
        gpu, _, size = item.partition(":")
        if gpu.isdigit() and size.isdigit():
            out.append((int(gpu), int(size)))
    return tuple(out)


def held_vram(running: list[Running], services: set[str]) -> dict[int, int]:
    """Bytes per GPU that these services' running containers hold, by the plan they were made with."""
    held: dict[int, int] = {}
    for r in running:
        if r.service in services and r.holds_vram:
            for gpu, size in r.vram:
                held[gpu] = held.get(gpu, 0) + size
    return held


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@dataclass(frozen=True)
class Running:
    """One container airpods created, as its labels describe it."""

    state: ContainerState
    service: str
    project: str
    pod: str | None
    kind: str
    ports: tuple[str, ...]  # host_ip:host:container
    volumes: tuple[str, ...]  # named volumes
    depends_on: tuple[str, ...]
    stop_timeout: int | None
    url: str | None
    model: str | None
    memory_estimate: int | None
    spec_hash: str
    config_hash: str
    vram: tuple[tuple[int, int], ...] = ()  # the GPU plan's VRAM per GPU when it was created

    @property
    def holds_vram(self) -> bool:
        return bool(self.vram) and self.state.status in ("running", "paused")

    @property
    def container(self) -> str:
        return self.state.name

    @classmethod
    def from_state(cls, state: ContainerState) -> Running:
        lab = state.labels
        # The pod is the one Podman says it is in, never the one a label names (that label is a
        # record of the spec, and a stop or clean acts on the pod).
        return cls(state, service=lab.get(LABEL_SERVICE, "") or state.name, project=project_of(lab),
                   pod=state.pod or None, kind=lab.get(LABEL_KIND, ""),
                   ports=_list(lab.get(LABEL_PORTS)), volumes=_list(lab.get(LABEL_VOLUMES)),
                   depends_on=_list(lab.get(LABEL_DEPENDS)), stop_timeout=_int(lab.get(LABEL_STOP_TIMEOUT)),
                   url=lab.get(LABEL_URL) or None, model=lab.get(LABEL_MODEL) or None,
                   memory_estimate=_int(lab.get(LABEL_MEMORY)), spec_hash=lab.get(LABEL_HASH, ""),
                   config_hash=lab.get(LABEL_CONFIG_HASH, ""), vram=_vram(lab.get(LABEL_VRAM)))

    def matches(self, spec: ServiceSpec) -> bool:
        """The container the config's spec would create (same service, pod and container)."""
        return self.service == spec.name and self.container == spec.container and (self.pod or spec.pod) == spec.pod

    def orphan_reason(self, specs: dict[str, ServiceSpec] | None) -> str:
        """Why this container no longer belongs to the config ('' when it does)."""
        if specs is None:
            return ""
        spec = specs.get(self.service)
        if spec is None:
            return f"service {self.service} was removed from the config"
        if self.matches(spec):
            return ""
        return (f"service {self.service} now uses pod {spec.pod} / container {spec.container}"
                f" (this is pod {self.pod or '-'} / container {self.container})")


def in_project(states: list[ContainerState], project: str) -> list[Running]:
    """This project's service containers (a pod's infra container carries the pod's labels too)."""
    return [Running.from_state(s) for s in states
            if not s.infra and s.labels.get(LABEL_MANAGED) == "true" and project_of(s.labels) == project]


def owned_by(labels: dict[str, str] | None, project: str) -> bool:
    """An object (pod, volume, container) airpods created for this project."""
    return labels is not None and labels.get(LABEL_MANAGED) == "true" and project_of(labels) == project


def foreign_objects(runtime: ContainerRuntime, spec: ServiceSpec) -> list[str]:
    """Objects with this spec's pod or container name that are not this project's: a start must
    never remove or recreate them (another config's, or not airpods' at all)."""
    out = []
    state = runtime.inspect(spec.container)
    if state is not None and not owned_by(state.labels, spec.project):
        out.append(f"container {spec.container} ({_owner(state.labels, state.unproven)})")
    pod = runtime.pod_labels(spec.pod)
    if pod is not None and not owned_by(pod, spec.project):
        out.append(f"pod {spec.pod} ({_owner(pod)})")
    return out


def _owner(labels: dict[str, str], unproven: bool = False) -> str:
    if unproven:
        return "not created by your airpods: it carries airpods' labels without your airpods' seal"
    if labels.get(LABEL_MANAGED) != "true":
        return "not created by airpods"
    return f"belongs to the airpods project '{project_of(labels)}'"


def renamed_in_project(runtime: ContainerRuntime, todo: list[ServiceSpec]) -> dict[str, Running]:
    """Services being created whose container this project still has under another name (a project's
    names gained its prefix, or `pod =` changed): the new one replaces it, ports and all."""
    if not todo:
        return {}
    mine = {s.name: s for s in todo}
    out = {}
    for r in in_project(runtime.list_managed(), todo[0].project):
        spec = mine.get(r.service)
        if spec is not None and not r.matches(spec) and r.kind == spec.kind:
            out[r.service] = r
    return out


def keeps_ports(spec: ServiceSpec, old: Running | None) -> bool:
    """The new pod publishes only ports its renamed predecessor holds (freed when it is replaced)."""
    return old is not None and all(f"{p.host_ip}:{p.host}:{p.container}" in old.ports for p in spec.ports)


def serving(runtime: ContainerRuntime, spec: ServiceSpec) -> tuple[str | None, str]:
    """(spec.base_url, "") when Podman says this project's running container of the service
    publishes that port now; else (None, why). A key is sent nowhere else: while a service is
    stopped, anyone on this machine may listen on its port."""
    state = runtime.inspect(spec.container)
    if state is None or not owned_by(state.labels, spec.project) or state.labels.get(LABEL_SERVICE) != spec.name:
        return None, f"service '{spec.name}' is not running (no container of it in project '{spec.project}')"
    if not state.running:
        return None, f"service '{spec.name}' is not running (its container is {state.status})"
    if not spec.base_url:
        return None, f"service '{spec.name}' publishes no port on this machine"
    if not spec.publishes_on(state.ports):
        return None, (f"service '{spec.name}' runs, but its container does not publish {spec.base_url} (the config "
                      "changed since it started)")
    return spec.base_url, ""


def served(spec: ServiceSpec, found: tuple[str | None, str]) -> str:
    """The base URL of `serving`'s answer; RuntimeFailure (exit 1) when it is not served."""
    from airpods.errors import RuntimeFailure

    base, why = found
    if base is None:
        raise RuntimeFailure(why, hint=f"airpods start {spec.name}")
    return base


def serving_base(runtime: ContainerRuntime, spec: ServiceSpec) -> str:
    """spec.base_url, checked as `serving` does; RuntimeFailure (exit 1) when it is not served."""
    return served(spec, serving(runtime, spec))

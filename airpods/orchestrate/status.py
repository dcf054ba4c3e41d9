"""Status: container state from Podman, health and model id over HTTP, probed concurrently."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airpods.health.probe import probe_all, served_model
from airpods.kinds import kind_of
from airpods.orchestrate.running import Running
from airpods.orchestrate.stops import on_purpose
from airpods.plan.spec import LABEL_CONFIG_HASH, LABEL_HASH, ServiceSpec
from airpods.probes.cgroups import LimitSupport
from airpods.runtime.port import ContainerRuntime, ContainerState


@dataclass
class ServiceStatus:
    service: str
    state: str  # running | stopped | exited | absent
    health: str  # healthy | starting | unhealthy | unknown
    url: str | None
    image: str
    pod: str
    container: str
    model: str | None = None
    uptime: float | None = None
    exit_code: int | None = None
    kind: str = ""
    wired_to: list[str] = field(default_factory=list)
    outdated: bool = False  # running with an older config (start recreates it)
    cpuset: str | None = None
    threads: int | None = None
    cpu_plan: str = ""
    cpuset_enforced: bool | None = None  # None: no cpuset to enforce
    memory_limit: str | None = None
    memory_limit_enforced: bool | None = None  # False: advisory (rootless on cgroups v1)
    last_failure: dict | None = None  # why the last start failed (out of memory), else the watcher's last restart
    restarts: int = 0  # restarts the health watcher saw since the last `airpods start` made the container
    router: dict | None = None  # a router service: loaded ids, how many available, each model's state
    plan_differs: bool = False  # same config, but the machine plan (CPU/GPU probes) would differ now
    orphaned: str | None = None  # why this container no longer belongs to the config
    project: str = ""
    gpus: list[int] = field(default_factory=list)
    gpu_layers: int | None = None
    gpu_plan: str = ""
    gpu_text: str = ""  # "GPU 0 · 31/40 layers"

    def to_json(self) -> dict:
        return {"service": self.service, "state": self.state, "health": self.health, "url": self.url,
                "image": self.image, "pod": self.pod, "container": self.container, "model": self.model,
                "kind": self.kind, "uptime_seconds": None if self.uptime is None else round(self.uptime, 1),
                "exit_code": self.exit_code, "wired_to": self.wired_to, "outdated": self.outdated,
                "cpuset": self.cpuset, "threads": self.threads, "cpu_plan": self.cpu_plan,
                "cpuset_enforced": self.cpuset_enforced, "memory_limit": self.memory_limit,
                "memory_limit_enforced": self.memory_limit_enforced, "last_failure": self.last_failure,
                "restarts": self.restarts, "router": self.router, "plan_differs": self.plan_differs,
                "orphaned": self.orphaned,
                "project": self.project, "gpus": self.gpus, "gpu_layers": self.gpu_layers,
                "gpu_plan": self.gpu_plan}


def _one(spec: ServiceSpec, state: ContainerState | None, limits: LimitSupport,
         stops: dict[str, float] | None = None) -> ServiceStatus:
    out = ServiceStatus(spec.name, "absent", "unknown", spec.url, spec.image, spec.pod, spec.container,
                        kind=spec.kind, wired_to=list(spec.wired_to), cpuset=spec.cpuset,
                        threads=spec.threads, cpu_plan=spec.cpu_reason,
                        cpuset_enforced=limits.enforces("cpuset") if spec.cpuset else None,
                        memory_limit=spec.memory,
                        memory_limit_enforced=limits.enforces("memory") if spec.memory else None)
    out.gpus, out.gpu_layers, out.gpu_plan = list(spec.gpus), spec.gpu_layers, spec.gpu_plan
    out.gpu_text = spec.gpu_text
    if spec.cpuset and not limits.enforces("cpuset"):
        out.cpu_plan += f"; cpuset not enforced ({limits.mode}, cgroups v{limits.cgroup_version}): threads only"
    if state is None:
        return out
    out.state = state.judged(on_purpose(state, stops or {}))
    out.image = state.image or spec.image
    out.exit_code = state.exit_code if not state.running else None
    if state.labels.get(LABEL_HASH) != spec.spec_hash:
        same_config = bool(spec.config_hash) and state.labels.get(LABEL_CONFIG_HASH) == spec.config_hash
        out.plan_differs, out.outdated = same_config, not same_config
    if not state.running:
        return out
    out.uptime = time.time() - state.started_at if state.started_at else None
    if not spec.publishes_on(state.ports):  # probed (and sent its key) only where its container listens
        return out
    if spec.health_urls:
        result = probe_all(spec.health_urls, spec.health.expected_status, timeout=1.0, headers=spec.probe_headers)
        out.health = {"healthy": "healthy", "starting": "starting", "loading": "starting"}.get(
            result.stage, "unhealthy")
    if spec.router is not None and out.health == "healthy":
        from airpods.health.router_api import list_models

        models = list_models(spec.base_url or "", spec.env.get("LLAMA_API_KEY"), timeout=1.0) or []
        loaded = [m.id for m in models if m.state == "loaded"]
        out.router = {"loaded": loaded, "available": len(models),
                      "models": [m.to_json(spec.name) for m in models]}
        out.model = f"{len(loaded)}/{len(models)} loaded" + (f": {', '.join(loaded)}" if loaded else "")
    elif kind_of(spec.kind).llama_server and spec.url and out.health == "healthy":
        out.model = served_model(spec.url, api_key=spec.env.get("LLAMA_API_KEY"))
    return out


def _orphan(r: Running, reason: str, stops: dict[str, float] | None = None) -> ServiceStatus:
    """A container of this project that the config no longer describes: what its labels say."""
    state = r.state
    judged = state.judged(on_purpose(state, stops or {}))
    out = ServiceStatus(r.service, judged, "unknown", r.url, state.image, r.pod or "-", r.container,
                        kind=r.kind, exit_code=state.exit_code if not state.running else None,
                        orphaned=reason, project=r.project)
    if state.running:
        out.uptime = time.time() - state.started_at if state.started_at else None
    return out


def status(runtime: ContainerRuntime, specs: list[ServiceSpec], running: list[Running] | None = None, *,
           all_specs: dict[str, ServiceSpec] | None = None, names: list[str] | None = None,
           stops: dict[str, float] | None = None) -> list[ServiceStatus]:
    """One list call for every container's state (`running`: this project's, read back from
    Podman), then the HTTP probes in parallel. Containers the config no longer describes are
    listed as orphans (with `names`, only those of the services named)."""
    if running is None:
        from airpods.orchestrate.running import in_project

        running = in_project(runtime.list_managed(), specs[0].project if specs else "default")
    states = {s.container: r.state for s in specs for r in running if r.matches(s)}
    limits = runtime.limit_support()
    known = all_specs if all_specs is not None else {s.name: s for s in specs}
    orphans = []
    for r in running:
        if any(r.matches(s) for s in specs) or (names and r.service not in names):
            continue
        reason = r.orphan_reason(known)
        if reason:
            orphans.append(_orphan(r, reason, stops))
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
        rows = list(pool.map(lambda s: _one(s, states.get(s.container), limits, stops), specs))
    for row, spec in zip(rows, specs, strict=True):
        row.project = spec.project
    return rows + orphans

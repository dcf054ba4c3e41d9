"""ServiceSpec: everything a start creates for one service, resolved and pure data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from airpods.kinds import kind_of
from airpods.labels import (  # noqa: F401  (re-exported: the plan's names for them)
    AIRPODS_LABEL_PREFIX,
    DEFAULT_PROJECT,
    HEALTH_KEY_PATH,
    LABEL_CONFIG_HASH,
    LABEL_DEPENDS,
    LABEL_HASH,
    LABEL_HEALTH,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_MEMORY,
    LABEL_MODEL,
    LABEL_PINS,
    LABEL_POD,
    LABEL_PORTS,
    LABEL_PROJECT,
    LABEL_SEAL,
    LABEL_SERVICE,
    LABEL_SHAPE,
    LABEL_STOP_TIMEOUT,
    LABEL_URL,
    LABEL_VOLUMES,
    LABEL_VRAM,
)
from airpods.plan.codec import decode, encode
from airpods.plan.memory import LlamaRun, run_from_argv
from airpods.plan.router import RouterSpec

NOTE, LATER = "note", "later"  # a ServiceSpec field's role (see its docstring); unmarked: what Podman creates


def note(default: Any) -> Any:
    """A plan note: carried for status, render and the other views, never hashed."""
    return field(default=default, metadata={"role": NOTE})


def later(default: Any) -> Any:
    """What Podman creates, added later: hashed only once it differs from `default`."""
    return field(default=default, metadata={"role": LATER})


def host_url(scheme: str, host_ip: str, port: int) -> str:
    """scheme://HOST:PORT as reached from this host (a wildcard bind is reached on 127.0.0.1)."""
    host = "127.0.0.1" if host_ip in ("", "0.0.0.0", "::") else host_ip
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def same_binding(published: tuple[tuple[str, int, int], ...], host_ip: str, host: int, container: int) -> bool:
    """Whether Podman's (host ip, host port, container port) list holds this binding (it says ""
    for a wildcard)."""
    wild = ("", "0.0.0.0")
    return any(h == host and c == container and (ip == host_ip or (ip in wild and host_ip in wild))
               for ip, h, c in published)


@dataclass(frozen=True)
class PortSpec:
    host: int
    container: int
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class VolumeSpec:
    source: str
    target: str
    mode: str = "rw"

    @property
    def is_named(self) -> bool:
        return not self.source.startswith("/")


@dataclass(frozen=True)
class Confinement:
    """What a container may do beyond running its program (plan/hardening.py decides it per kind)."""

    profile: str = "default"  # what the config asked for: strict | default (Podman's own defaults)
    cap_drop: tuple[str, ...] = ()  # ("ALL",): every capability dropped
    cap_add: tuple[str, ...] = ()  # given back (CHOWN, NET_BIND_SERVICE, ...)
    no_new_privileges: bool = False  # no setuid binary or file capability gains anything
    read_only: bool = False  # the root filesystem
    tmpfs: tuple[tuple[str, str], ...] = ()  # (path, size): written in memory
    init: bool = False  # Podman's catatonit as PID 1: reaps children, forwards signals

    def to_json(self) -> dict:
        return {"profile": self.profile, "cap_drop": list(self.cap_drop), "cap_add": list(self.cap_add),
                "no_new_privileges": self.no_new_privileges, "read_only": self.read_only,
                "tmpfs": dict(self.tmpfs), "init": self.init}


@dataclass(frozen=True)
class HealthSpec:
    path: str | None
    expected_status: tuple[int, int]
    timeout: float
    gates: tuple[str, ...] = ()  # paths that must answer 2xx before `path` counts (llama.cpp: /health)
    # After start (plan/health.py): Podman's health check. check = "": none.
    check: str = ""  # the shell text run in the container (CMD-SHELL)
    interval: float = 0.0  # seconds between checks
    retries: int = 3  # failures in a row that make it unhealthy (then Podman restarts it)
    start_period: float = 0.0  # seconds after a start in which failures do not count
    probe_timeout: float = 10.0  # one probe request's limit (the check itself gets a little more)
    max_restarts: int = 4  # restarts in a row before airpods leaves it stopped

    @property
    def check_timeout(self) -> float:
        """What the check itself may take: its three requests, and a little more."""
        return 3 * self.probe_timeout + 2

    @property
    def policy_label(self) -> str:
        """The watcher's `io.airpods.health` label: "interval/retries/max_restarts/start_period"."""
        return f"{self.interval:g}/{self.retries}/{self.max_restarts}/{self.start_period:g}"


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a start creates for one service. Fields are of two kinds:

    - what Podman creates (the container's image, argv, env, mounts, devices, limits, labels'
      inputs): the spec hash is made of all of them, so a change to any one recreates the container;
    - plan notes (`note()`): why the plan chose what it did, what other views read (GPU plan, memory
      estimate, the gateway's routes), and files airpods rewrites while the container runs: never
      hashed.

    The rule that keeps hashes stable across upgrades: a field added after containers were made
    without it is declared `later()` and left out of the hash while it holds its default, so that
    an older container's hash still matches until the new field is used. tests/unit/plan/
    test_golden_hashes.py pins the hashes of fixed stacks."""

    # What Podman creates: hashed whole.
    name: str
    kind: str
    image: str
    variant: str
    pod: str
    container: str
    network: str
    aliases: tuple[str, ...]
    ports: tuple[PortSpec, ...]
    volumes: tuple[VolumeSpec, ...]
    env: dict[str, str]
    devices: tuple[str, ...]
    security_opt: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    command: tuple[str, ...]
    health: HealthSpec
    memory: str | None = None
    cpus: float | None = None
    cpuset: str | None = None  # CPUs the container is pinned to (the CPU plan, or resources.cpuset)
    threads: int | None = None  # llama.cpp --threads (the plan's or the user's)
    router: RouterSpec | None = None  # mode = "router": the models behind this llama-server
    router_preset: str = ""  # the preset INI the router reads (written to router.preset_host_path)
    restart_policy: str = "unless-stopped"
    stop_timeout: int = 10
    default_model: str | None = None
    secret_env: frozenset[str] = frozenset()
    extra_labels: tuple[tuple[str, str], ...] = ()
    gpus: tuple[int, ...] = ()  # host GPU indices the GPU plan gives it (empty: none planned)
    gpu_layers: int | None = None  # repeating layers on the GPUs (None: not planned)
    config_files: tuple[tuple[str, str], ...] = later(())  # (host path, text) written before create; no secrets
    confinement: Confinement = later(Confinement())  # capabilities, privileges, root filesystem (plan/hardening.py)

    # Plan notes: never hashed.
    cpu_reason: str = note("")
    memory_check: str = note("refuse")  # llama.cpp: refuse | warn | off (services.NAME.memory_check)
    depends_on: tuple[str, ...] = note(())
    wired_to: tuple[str, ...] = note(())
    enabled: bool = note(True)
    gpu_reason: str = note("")
    gpu_warnings: tuple[str, ...] = note(())
    project: str = note(DEFAULT_PROJECT)  # the scope this service belongs to (runtime.project or the config file)
    config_hash: str = note("")  # a hash of the configuration alone: what differs without it is the probes' doing
    memory_estimate: int | None = note(None)  # bytes, stamped at create time from the memory preflight
    llama: LlamaRun | None = note(None)  # a single-model llama.cpp service's run, typed (resolve reads its argv once)
    gpu_n_layer: int | None = note(None)  # the model's repeating layers (for "31/40 layers")
    gpu_plan: str = note("")  # why (as cpu_reason)
    vram: tuple[tuple[int, int], ...] = note(())  # (GPU index, bytes) the plan puts there
    gpu_ram: int | None = note(None)  # bytes of a planned model that stay in RAM
    gpu_ram_parts: tuple[int, ...] = note(())  # (weights, KV cache, compute) of gpu_ram
    gpu_user: str | None = note(None)  # the user's own GPU flag (key path): checked, not planned
    gpu_pins: tuple[str, ...] = note(())  # services.NAME.gpu.devices
    gpu_cap: int | None = note(None)  # services.NAME.gpu.memory in bytes: its VRAM share
    scheme: str = note("http")  # of the published URL (the gateway: https)
    gateway_config: str = note("")  # the gateway's Caddyfile (no keys in it), written to gateway_dir/etc
    gateway_dir: str = note("")  # airpods' folder for the gateway: keys.json, etc/Caddyfile, etc/keys.caddy
    gateway_routes: tuple[tuple[str, str], ...] = note(())  # (path prefix, service) the gateway serves
    gateway_names: tuple[str, ...] = note(())  # the names its certificate covers
    hub_members: tuple[tuple[str, str, int], ...] = note(())  # the hub: (member id, title, relay port) it routes to
    resident_why: str = note("")  # a router with max_loaded = "auto": how many stay loaded, and why (plan/resident.py)
    resident_left_out: tuple[tuple[str, str], ...] = note(())  # (model id, why it is never loaded)
    http_auth: str = note("")  # Basic credentials airpods' own probes of its port send (Prometheus'); never shown
    @property
    def probe_headers(self) -> dict[str, str] | None:
        """What airpods' own HTTP probes of its published port send (only there: see publishes_on)."""
        return {"Authorization": f"Basic {self.http_auth}"} if self.http_auth else None

    @property
    def health_key_file(self) -> str:
        """The host file mounted as its health probe's key ("" for none)."""
        return next((v.source for v in self.volumes if v.target == HEALTH_KEY_PATH), "")

    @property
    def gpu_text(self) -> str:
        """'GPU 0 · 31/40 layers', 'GPU 0,1', 'CPU' (planned onto no GPU), or '' (no GPU plan)."""
        if not self.gpus and self.gpu_layers is None:
            return ""
        where = "GPU " + ",".join(map(str, self.gpus)) if self.gpus else "CPU"
        if self.gpu_layers is None or not self.gpu_n_layer:
            return where
        return f"{where} · {min(self.gpu_layers, self.gpu_n_layer)}/{self.gpu_n_layer} layers"

    @property
    def run(self) -> LlamaRun:
        """The llama.cpp run (model, ctx, slots, cache types, GPU layers)."""
        return self.llama if self.llama is not None else run_from_argv(self.command)

    def _published(self) -> str | None:
        """http://HOST:PORT for the first published port (a wildcard bind is reached on 127.0.0.1)."""
        if not self.ports:
            return None
        return host_url(self.scheme, self.ports[0].host_ip, self.ports[0].host)

    def publishes_on(self, published: tuple[tuple[str, int, int], ...]) -> bool:
        """Whether the ports Podman says a container publishes include this spec's first one: the
        only port a key is sent to (another user may listen on any port that is not)."""
        return bool(self.ports) and same_binding(published, self.ports[0].host_ip, self.ports[0].host,
                                                 self.ports[0].container)

    @property
    def base_url(self) -> str | None:
        """http://HOST:PORT of the first published port, as reached from this host."""
        return self._published()

    @property
    def url(self) -> str | None:
        """The base URL on the host (llama.cpp: its OpenAI-compatible /v1)."""
        base = self._published()
        return f"{base}/v1" if base and kind_of(self.kind).llama_server else base

    @property
    def health_url(self) -> str | None:
        base = self._published()
        return None if base is None or self.health.path is None else base + self.health.path

    @property
    def health_urls(self) -> list[str]:
        """Every URL that must answer for the service to be healthy, gates first."""
        base = self._published()
        if base is None:
            return []
        paths = [*self.health.gates, *([self.health.path] if self.health.path else [])]
        return [base + p for p in dict.fromkeys(paths)]

    @cached_property
    def spec_hash(self) -> str:
        """A hash of what the container is made from; a change means recreate (the rule: see the
        class docstring)."""
        return hashlib.sha256(json.dumps(hashed_fields(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def labels(self) -> dict[str, str]:
        """Everything later commands need, read back from Podman (orchestrate/running.py)."""
        labels = {**dict(self.extra_labels), LABEL_MANAGED: "true", LABEL_PROJECT: self.project,
                  LABEL_SERVICE: self.name, LABEL_HASH: self.spec_hash, LABEL_CONFIG_HASH: self.config_hash,
                  LABEL_POD: self.pod, LABEL_KIND: self.kind,
                  LABEL_PORTS: ",".join(f"{p.host_ip}:{p.host}:{p.container}" for p in self.ports),
                  LABEL_VOLUMES: ",".join(v.source for v in self.volumes if v.is_named),
                  LABEL_DEPENDS: ",".join(self.depends_on), LABEL_STOP_TIMEOUT: str(self.stop_timeout)}
        if self.url:
            labels[LABEL_URL] = self.url
        if self.default_model:
            labels[LABEL_MODEL] = self.default_model
        if self.memory_estimate is not None:
            labels[LABEL_MEMORY] = str(self.memory_estimate)
        if self.health.check:
            labels[LABEL_HEALTH] = self.health.policy_label
        if self.router is not None and any(m.pin for m in self.router.models):
            labels[LABEL_PINS] = ",".join(m.id for m in self.router.models if m.pin)
        if self.vram:
            labels[LABEL_VRAM] = ",".join(f"{gpu}:{size}" for gpu, size in self.vram)
        if kind_of(self.kind).llama_server and self.router is None:
            labels[LABEL_SHAPE] = self.run.label()
            if self.run.model_in_volume:
                labels[LABEL_MODEL] = self.run.model_in_volume
        return labels

    @property
    def resource_labels(self) -> dict[str, str]:
        """Labels for the shared things a service needs (network, volumes)."""
        return {**dict(self.extra_labels), LABEL_MANAGED: "true", LABEL_PROJECT: self.project}

    def public_env(self, show_secrets: bool = False) -> dict[str, str]:
        if show_secrets:
            return dict(self.env)
        return {k: ("********" if k in self.secret_env and v else v) for k, v in self.env.items()}

    def to_json(self, show_secrets: bool = False) -> dict:
        """The `config render --json` contract."""
        return {
            "service": self.name,
            "kind": self.kind,
            "image": self.image,
            "variant": self.variant,
            "pod": self.pod,
            "container": self.container,
            "network": self.network,
            "aliases": list(self.aliases),
            "ports": [asdict(p) for p in self.ports],
            "volumes": [asdict(v) for v in self.volumes],
            "env": self.public_env(show_secrets),
            "devices": list(self.devices),
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "command": list(self.command),
            "health": {"path": self.health.path, "expected_status": list(self.health.expected_status),
                       "timeout": self.health.timeout, "url": self.health_url,
                       "urls": self.health_urls, "check": self.health.check or None,
                       "interval": self.health.interval, "retries": self.health.retries,
                       "start_period": self.health.start_period, "probe_timeout": self.health.probe_timeout,
                       "max_restarts": self.health.max_restarts},
            "url": self.url,
            "security_opt": list(self.security_opt),
            "security": self.confinement.to_json(),
            "resources": {"memory": self.memory, "cpus": self.cpus, "cpuset": self.cpuset},
            "cpuset": self.cpuset,
            "threads": self.threads,
            "cpu_plan": self.cpu_reason,
            "restart_policy": self.restart_policy,
            "depends_on": list(self.depends_on),
            "default_model": self.default_model,
            "wired_to": list(self.wired_to),
            "gpu": {"variant": self.variant, "reason": self.gpu_reason, "warnings": list(self.gpu_warnings)},
            "gpus": list(self.gpus),
            "gpu_layers": self.gpu_layers,
            "gpu_plan": self.gpu_plan,
            "vram": {str(i): b for i, b in self.vram},
            "spec_hash": self.spec_hash,
            "config_hash": self.config_hash,
            "project": self.project,
            "mode": "router" if self.router else "single",
            "router": {**self.router.to_json(), "max_loaded_why": self.resident_why or None,
                       "left_out": dict(self.resident_left_out)} if self.router else None,
            "router_preset": self.router_preset or None,
            "gateway": {"routes": dict(self.gateway_routes), "names": list(self.gateway_names),
                        "caddyfile": self.gateway_config,
                        "listen": self.ports[0].host_ip if self.ports else None} if kind_of(self.kind).door else None,
            "config_files": dict(self.config_files),
        }


def hashed_fields(spec: ServiceSpec) -> dict[str, Any]:
    """The fields the spec hash is made of, encoded: every one but the plan notes, and a `later()`
    one only once it differs from its default."""
    return {f.name: encode(getattr(spec, f.name)) for f in fields(spec)
            if f.metadata.get("role") != NOTE
            and not (f.metadata.get("role") == LATER and getattr(spec, f.name) == f.default)}


def to_record(spec: ServiceSpec) -> dict:
    """Everything, unmasked, for the spec cache (see plan/cache.py)."""
    return encode(spec)


def from_record(data: dict) -> ServiceSpec:
    """A ServiceSpec from to_record()'s data; TypeError or ValueError for a record of another shape."""
    return decode(ServiceSpec, data)

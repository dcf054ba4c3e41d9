"""What the Podman adapter needs besides podman-py: a stdlib HTTP client on the unix socket for
read-only calls, Podman's timestamps, inspect output mapped to ContainerState, and the pod start
response's per-container errors. No podman-py import here."""

from __future__ import annotations

import http.client
import json
import socket
from datetime import datetime
from typing import Any

from airpods.runtime.port import ContainerState, ContainerUsage, HealthRun

INSTALL_HINT = ("install Podman (Debian/Ubuntu: sudo scripts/setup-podman.sh, or apt-get install "
                "podman netavark aardvark-dns catatonit); see https://podman.io/docs/installation")



def lost_hint(url: str) -> str:
    """What to do when the API stopped answering: on a machine with Podman installed it went away
    (its service stopped or was killed), so install advice would mislead."""
    import shutil

    if shutil.which("podman") is None:
        return INSTALL_HINT
    return (f"the Podman API service at {url} stopped answering (stopped, killed or restarted); run the "
            "command again: airpods starts a private service when none answers, and a start converges "
            "what an interrupted one left half-made")


API = "/v4.0.0/libpod"
OCI_HINT = ("the container runtime (runc or crun) failed before the program ran; an old runc on a newer "
            "kernel does this: try crun, or a newer runc ([engine] runtime in /etc/containers/containers.conf), "
            "and see the Podman API service's log")


ON_FAILURE_RESTART = 3  # libpod's HealthCheckOnFailureAction: 1 none, 2 kill, 3 restart, 4 stop


def healthcheck(spec: Any) -> dict[str, Any]:
    """podman-py's create kwargs for a spec's health check (Docker's HealthConfig, nanoseconds),
    restarted by Podman when it turns unhealthy. The check gets time for its three requests."""
    h = spec.health
    ns = lambda seconds: int(seconds * 1_000_000_000)  # noqa: E731
    return {"healthcheck": {"Test": ["CMD-SHELL", h.check], "Interval": ns(h.interval),
                            "Timeout": ns(h.check_timeout), "Retries": h.retries,
                            "StartPeriod": ns(h.start_period)},
            "health_check_on_failure_action": ON_FAILURE_RESTART}


def container_kwargs(spec: Any, limits: Any, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """podman-py's create kwargs for a spec; `limits` (LimitSupport): what the engine cannot
    enforce is left out, not refused. `labels`: the spec's, sealed (runtime/owned.py)."""
    kwargs: dict[str, Any] = {
        "name": spec.container,
        "pod": spec.pod,
        "command": list(spec.command),
        "environment": dict(spec.env),
        "labels": dict(spec.labels if labels is None else labels),
        "volumes": {v.source: {"bind": v.target, "mode": v.mode} for v in spec.volumes},
        "restart_policy": {"Name": spec.restart_policy},
        "stop_timeout": int(spec.stop_timeout),
    }
    if spec.entrypoint is not None:
        kwargs["entrypoint"] = list(spec.entrypoint)
    if spec.health.check:
        kwargs.update(healthcheck(spec))
    if spec.devices:
        kwargs["devices"] = list(spec.devices)
        if limits.rootless and any(d.startswith(("/dev/kfd", "/dev/dri")) for d in spec.devices):
            kwargs["group_add"] = ["keep-groups"]  # rootless: keep the user's video/render groups
    if spec.security_opt:
        kwargs["security_opt"] = list(spec.security_opt)
    kwargs.update(confinement_kwargs(spec.confinement))
    if spec.memory and limits.enforces("memory"):
        kwargs["mem_limit"] = spec.memory
    if spec.cpus and limits.enforces("cpu"):
        kwargs["cpu_period"] = 100_000
        kwargs["cpu_quota"] = int(spec.cpus * 100_000)
    if spec.cpuset and limits.enforces("cpuset"):
        kwargs["cpuset_cpus"] = spec.cpuset
    return kwargs


def confinement_kwargs(c: Any) -> dict[str, Any]:
    """podman-py's create kwargs for a Confinement (plan/hardening.py); its tmpfs= is refused by
    podman-py, so a tmpfs goes in as a mount."""
    kwargs: dict[str, Any] = {}
    if c.cap_drop:
        kwargs["cap_drop"] = list(c.cap_drop)
    if c.cap_add:
        kwargs["cap_add"] = list(c.cap_add)
    if c.no_new_privileges:
        kwargs["no_new_privileges"] = True
    if c.read_only:
        kwargs["read_only"] = True
    if c.init:
        kwargs["init"] = True
    if c.tmpfs:
        kwargs["mounts"] = [{"type": "tmpfs", "source": "tmpfs", "target": path, "size": size}
                            for path, size in c.tmpfs]
    return kwargs


def confinement_of(attrs: dict) -> Any:
    """What inspect says a container was given (HostConfig), as a Confinement; None from a listing."""
    from airpods.plan.spec import Confinement

    host = attrs.get("HostConfig")
    if not isinstance(host, dict):
        return None
    tmpfs = host.get("Tmpfs") if isinstance(host.get("Tmpfs"), dict) else {}
    return Confinement("", tuple(str(c).removeprefix("CAP_") for c in host.get("CapDrop") or []),
                       tuple(str(c).removeprefix("CAP_") for c in host.get("CapAdd") or []),
                       "no-new-privileges" in (host.get("SecurityOpt") or []), bool(host.get("ReadonlyRootfs")),
                       tuple(sorted((str(k), str(v)) for k, v in tmpfs.items())), bool(host.get("Init")))


def start_refused(name: str, causes: list[str]) -> tuple[str, str]:
    """(message, hint) for a start the OCI runtime refused, from its own per-container messages: a
    host port someone else holds is said as such (rootful Podman keeps a removed pod's port open
    in the process that started it, now and then), anything else as the runtime's failure."""
    import re

    for cause in causes:
        m = re.search(r"listen tcp\d? \[?([0-9a-fA-F.:]*?)\]?:(\d+): bind: address already in use", cause)
        if m:
            ip, port = m.group(1) or "0.0.0.0", m.group(2)
            return (f"start container {name}: host port {ip}:{port} is held by another process",
                    f"see who holds it: ss -ltnp 'sport = :{port}'; when it is `podman system service` or conmon, "
                    "Podman kept the port of a removed container: restart that service (systemctl restart "
                    "podman.socket), or publish this service on another port")
    return f"start container {name}: the OCI runtime refused: {causes[0]}", OCI_HINT


def vague(message: str) -> bool:
    low = message.lower()
    return "internal libpod error" in low or "starting some containers" in low or "oci runtime" in low


def pod_start_errors(body: bytes) -> list[str]:
    """The per-container errors of a libpod pod start response ({"Errs": [...]}), most specific
    first (the OCI runtime's text rather than Podman's wrapper)."""
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        return []
    errs = data.get("Errs") or data.get("errs") or [] if isinstance(data, dict) else []
    out = []
    for err in errs:
        text = str(err.get("Err") or err.get("message") or err) if isinstance(err, dict) else str(err)
        out.append(text.strip())
    return sorted(dict.fromkeys(t for t in out if t), key=lambda t: ("runc" not in t and "crun" not in t, len(t)))


def pod_start_causes(socket_path: str, pod: str) -> list[str]:
    """What Podman's API keeps from a vague 'internal libpod error': starting the pod answers with
    the OCI runtime's own message per container."""
    from urllib.parse import quote

    conn = UnixHTTPConnection(socket_path)
    try:
        conn.request("POST", f"{API}/pods/{quote(pod, safe='')}/start")
        body = conn.getresponse().read()
    except OSError:
        return []
    finally:
        conn.close()
    return pod_start_errors(body)


def message_of(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def epoch(value: Any) -> float | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    text = str(value)
    # Podman gives nanoseconds and a zone: 2026-11-22T08:00:00.123456789Z / +00:00
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):] or "+00:00"
        text = f"{head}.{digits[:6]}{'+00:00' if zone == 'Z' else zone}"
    elif text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None




def container_state(attrs: dict) -> ContainerState:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    name = str(attrs.get("Name") or (attrs.get("Names") or ["?"])[0]).lstrip("/")
    status = state.get("Status") if isinstance(state, dict) else str(state)
    exit_code = state.get("ExitCode") if isinstance(state, dict) else attrs.get("ExitCode")
    started = state.get("StartedAt") if isinstance(state, dict) else attrs.get("StartedAt")
    labels = config.get("Labels") or attrs.get("Labels") or {}
    return ContainerState(name=name, status=str(status or "unknown"), exit_code=exit_code,
                          image=str(attrs.get("ImageName") or config.get("Image") or attrs.get("Image") or ""),
                          labels=dict(labels), started_at=epoch(started) if not isinstance(started, int)
                          else float(started), pod=attrs.get("PodName") or None,
                          restart_count=int(attrs.get("RestartCount") or 0),
                          oom_killed=bool(state.get("OOMKilled")) if isinstance(state, dict) else False,
                          infra=bool(attrs.get("IsInfra")), id=str(attrs.get("Id") or attrs.get("ID") or ""),
                          ports=ports_of(attrs), image_id=str(attrs.get("ImageID") or attrs.get("Image") or ""),
                          confinement=confinement_of(attrs), pid=int(state.get("Pid") or 0) if isinstance(state, dict)
                          else 0,
                          **health_of(state if isinstance(state, dict) else {}))


def ports_of(attrs: dict) -> tuple[tuple[str, int, int], ...]:
    """What Podman publishes for a container now, from a listing (Ports) or inspect
    (NetworkSettings.Ports, the pod's for a container in a pod): (host ip, host port, container port)."""
    out: list[tuple[str, int, int]] = []
    listed = attrs.get("Ports") if isinstance(attrs.get("Ports"), list) else []  # /containers/json
    for p in (p for p in listed if isinstance(p, dict)):
        host, inner = str(p.get("host_port", "")), str(p.get("container_port", ""))
        if host.isdigit() and inner.isdigit():
            span = p.get("range") if isinstance(p.get("range"), int) and p["range"] > 0 else 1
            out += [(str(p.get("host_ip") or ""), int(host) + i, int(inner) + i) for i in range(span)]
    settings = attrs.get("NetworkSettings")
    bound = settings.get("Ports") if isinstance(settings, dict) else None
    for key, binds in bound.items() if isinstance(bound, dict) else ():
        inner = str(key).split("/", 1)[0]
        for b in binds if isinstance(binds, list) and inner.isdigit() else []:
            if isinstance(b, dict) and str(b.get("HostPort", "")).isdigit():
                out.append((str(b.get("HostIp") or ""), int(b["HostPort"]), int(inner)))
    return tuple(dict.fromkeys(out))


def health_of(state: dict) -> dict[str, Any]:
    """inspect's State.Health (Podman 4.3 spells it Healthcheck in places) -> status and log."""
    health = state.get("Health") or state.get("Healthcheck") or {}
    if not isinstance(health, dict) or not health.get("Status"):
        return {}
    runs = []
    for item in health.get("Log") or []:
        at = epoch(item.get("Start"))
        if at is not None:
            runs.append(HealthRun(at, int(item.get("ExitCode") or 0), str(item.get("Output") or "").strip()))
    return {"health": str(health["Status"]), "health_log": tuple(runs)}


def usage_of(data: Any) -> dict[str, ContainerUsage]:
    """libpod's stats answer (not streamed) -> name -> CPU time, the engine's clock, memory in use."""
    out = {}
    for item in (data or {}).get("Stats") or []:
        cpu, at, mem = item.get("CPUNano"), item.get("SystemNano"), item.get("MemUsage")
        if isinstance(cpu, int) and isinstance(at, int) and isinstance(mem, (int, float)):
            out[str(item.get("Name"))] = ContainerUsage(cpu, at, int(mem))
    return out


def is_not_found(exc: Exception) -> bool:
    from podman.errors import NotFound

    if isinstance(exc, NotFound):
        return True
    msg = message_of(exc).lower()
    return "no such" in msg or "not found" in msg


def broken_stream_errors() -> tuple[type[Exception], ...]:
    """What requests/urllib3 raise when a streamed response is cut (not all are OSErrors)."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError)

"""The podman-py adapter: the only module that imports `podman` or talks to Podman's API.

It hides podman-py's pitfalls (see docs/plans/runtime.md): explicit base_url, named volumes via
`volumes=`, ports and aliases on the pod, pull errors that come only in the stream, error codes
that need the message too, stop timeouts set at create time.

Importing podman-py costs ~0.15-0.25 s (mostly `requests`), so read-only verbs (inspect, list,
exists, version) go through a small stdlib client on the same unix socket, and podman-py is
imported only when something is created, changed, pulled or streamed."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode

from airpods.errors import RuntimeFailure, RuntimeUnavailable
from airpods.plan.spec import LABEL_MANAGED, ServiceSpec
from airpods.probes.cgroups import LimitSupport, limit_support
from airpods.runtime.podman_readings import Readings
from airpods.runtime.podman_wire import (
    API,
    OCI_HINT,
    UnixHTTPConnection,
    container_kwargs,
    container_state,
    is_not_found,
    lost_hint,
    message_of,
    pod_start_causes,
    start_refused,
    vague,
)
from airpods.runtime.port import ContainerState, PullProgress


def podman_client_class() -> Any:
    """podman-py's client class. podman-py imports Rich's progress module when Rich is installed,
    only for `images.pull(progress_bar=True)`, which airpods never asks for (it draws its own pull
    progress); that import was ~25 ms of every `start`. So it is hidden while podman-py loads, and
    podman-py falls back to no progress bar. A Rich progress already loaded is used as it is."""
    if "podman" not in sys.modules and "rich.progress" not in sys.modules:
        sys.modules["rich.progress"] = None  # type: ignore[assignment]  # import fails: podman-py's fallback
        try:
            import podman  # noqa: F401  (loaded here, used below)
        finally:
            del sys.modules["rich.progress"]
    from podman import PodmanClient

    return PodmanClient


class PodmanRuntime(Readings):
    shared = True  # another process (the health watcher) reaches the same engine
    def __init__(self, url: str, origin: str = ""):
        self.url = url
        self.origin = origin
        self.socket_path = url[len("unix://"):] if url.startswith("unix://") else None

    @cached_property
    def client(self) -> Any:
        return podman_client_class()(base_url=self.url, timeout=60)

    @cached_property
    def stream_client(self) -> Any:
        """For streams that may be silent for long (logs -f, a pull's slow layer): no read timeout.
        With the 60 s one, `logs -f` on a quiet service ended in a read timeout after a minute."""
        return podman_client_class()(base_url=self.url, timeout=None)

    def _get(self, path: str, timeout: float = 30, **query: Any) -> tuple[int, Any]:
        """A GET on the libpod API (read-only, but for a health check's run): (status, decoded
        JSON or None)."""
        if self.socket_path is None:  # tcp:// or ssh://: let podman-py handle the transport
            response = self._call(f"GET {path}", self.client.api.get, path, params=query or None)
            return response.status_code, (response.json() if response.content else None)
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            conn.request("GET", API + path + (f"?{urlencode(query)}" if query else ""))
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise self._unreachable(exc) from exc
        finally:
            conn.close()
        data = json.loads(body) if body.strip() else None
        if response.status >= 500:
            raise RuntimeFailure(f"GET {path}: {(data or {}).get('message', response.status)}")
        return response.status, data

    def _unreachable(self, detail: object) -> RuntimeUnavailable:
        return RuntimeUnavailable(f"cannot reach the Podman API at {self.url}: {detail}", hint=lost_hint(self.url))

    def _exists(self, kind: str, name: str) -> bool:
        return self._get(f"/{kind}/{quote(name, safe='')}/exists")[0] == 204

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from podman.errors import APIError, PodmanError

        try:
            return fn(*args, **kwargs)
        except APIError as exc:
            msg = message_of(exc)
            if "operation failed" in msg.lower() or "connection" in msg.lower():
                raise self._unreachable(msg) from exc
            raise RuntimeFailure(f"{what}: {msg}") from exc
        except PodmanError as exc:
            raise self._unreachable(message_of(exc)) from exc
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise self._unreachable(exc) from exc

    def ping(self) -> str:
        _, info = self._get("/version")
        return str((info or {}).get("Version", "?"))

    @cached_property
    def _limits(self) -> LimitSupport:
        if self.socket_path is not None:  # local: who owns the socket runs the engine
            try:
                return limit_support(os.stat(self.socket_path).st_uid)
            except OSError as exc:
                raise self._unreachable(exc) from exc
        _, info = self._get("/info")  # remote engine: ask it (~0.2 s)
        host = (info or {}).get("host") or {}
        controllers = frozenset(c for c in ("cpuset", "memory", "cpu") if c in (host.get("cgroupControllers") or []))
        version = {"v1": 1, "v2": 2}.get(str(host.get("cgroupVersion")), 0)
        return LimitSupport(bool((host.get("security") or {}).get("rootless")), version, controllers)

    def limit_support(self) -> LimitSupport:
        return self._limits

    # networks and volumes -------------------------------------------------------------------
    def _ensure(self, kind: str, name: str, **kwargs: Any) -> bool:
        """Create a network or volume unless it exists (a concurrent create counts as existing).
        podman-py is touched only when something is created."""
        if self._exists(kind, name):
            return False
        from podman.errors import APIError

        try:
            getattr(self.client, kind).create(name, **kwargs)
        except APIError as exc:
            if "exists" in message_of(exc):
                return False
            raise RuntimeFailure(f"create {kind[:-1]} {name}: {message_of(exc)}") from exc
        return True

    def ensure_network(self, name: str, labels: dict[str, str] | None = None) -> bool:
        return self._ensure("networks", name, dns_enabled=True, labels=labels or {LABEL_MANAGED: "true"})

    def volume_exists(self, name: str) -> bool:
        return self._exists("volumes", name)

    def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> bool:
        return self._ensure("volumes", name, labels=labels or {LABEL_MANAGED: "true"})

    def volume_path(self, name: str) -> str | None:
        """The host directory a container would see. A volume backed by a device or tmpfs (created
        with --opt device=...) is mounted there only while in use: mount it first, or files written
        to the directory underneath would be hidden from every container."""
        status, data = self._get(f"/volumes/{quote(name, safe='')}/json")
        if status != 200 or not data:
            return None
        if (data.get("Options") or {}).get("device") and not data.get("MountCount"):
            self._mount_volume(name)
        return data.get("Mountpoint")

    def volume_labels(self, name: str) -> dict[str, str] | None:
        status, data = self._get(f"/volumes/{quote(name, safe='')}/json")
        return dict((data or {}).get("Labels") or {}) if status == 200 else None

    def _mount_volume(self, name: str) -> None:
        import shutil
        import subprocess

        podman = shutil.which("podman")
        if self.socket_path is None or podman is None or os.geteuid() != 0:
            raise RuntimeFailure(f"volume {name} is backed by a device that is not mounted, and airpods can only "
                                 "mount it as root with a local Podman",
                                 hint=f"mount it yourself (podman volume mount {name}) and run again")
        out = subprocess.run([podman, "volume", "mount", name], capture_output=True, text=True,  # noqa: S603
                             timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeFailure(f"mounting volume {name} failed: {out.stderr.strip()[:300]}")

    def remove_volume(self, name: str) -> bool:
        """Delete a named volume (not forced: a volume still used by a container stays)."""
        if not self.volume_exists(name):
            return False
        self._call(f"remove volume {name}", self.client.volumes.remove, name)
        return True

    # images ---------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return self._exists("images", ref)

    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The labels an image carries (which Podman copies onto every container made from it)."""
        status, data = self._get(f"/images/{quote(ref, safe='')}/json")
        if status != 200 or not isinstance(data, dict):
            return None
        return dict(data.get("Labels") or (data.get("Config") or {}).get("Labels") or {})

    def pull(self, ref: str) -> Iterator[PullProgress]:
        """Stream progress; podman-py reports a failed pull only as an 'error' line."""
        from podman.errors import APIError

        stream = self._call(f"pull {ref}", self.stream_client.images.pull, ref, stream=True, decode=True)
        try:
            for item in stream:
                if not isinstance(item, dict):
                    continue
                if item.get("error") or item.get("errorDetail"):
                    detail = item.get("error") or item.get("errorDetail", {}).get("message")
                    raise RuntimeFailure(f"pulling {ref} failed: {str(detail).strip()}")
                detail = item.get("progressDetail") or {}
                yield PullProgress(ref, str(item.get("status") or item.get("stream") or "").strip(),
                                   item.get("id"), detail.get("current"), detail.get("total"))
        except APIError as exc:
            raise RuntimeFailure(f"pulling {ref} failed: {message_of(exc)}") from exc
        except OSError as exc:
            raise RuntimeFailure(f"pulling {ref} failed: {exc}") from exc
        if not self.image_exists(ref):
            raise RuntimeFailure(f"pulling {ref} failed: the image is not present after the pull")

    # pods and containers ----------------------------------------------------------------------
    def pod_exists(self, name: str) -> bool:
        return self._exists("pods", name)

    def pod_labels(self, name: str) -> dict[str, str] | None:
        status, data = self._get(f"/pods/{quote(name, safe='')}/json")
        return dict((data or {}).get("Labels") or {}) if status == 200 else None

    def create_pod(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        ports = [{"host_ip": p.host_ip, "host_port": p.host, "container_port": p.container,
                  "protocol": "tcp"} for p in spec.ports]
        # Bridge mode said out loud: rootless Podman defaults to slirp4netns, which cannot join a
        # named network ("networks ... can only be used with Bridge mode networking").
        self._call(f"create pod {spec.pod}", self.client.pods.create, spec.pod,
                   portmappings=ports, networks={spec.network: {"aliases": list(spec.aliases)}},
                   netns={"nsmode": "bridge"}, labels=dict(spec.labels if labels is None else labels))

    def remove_pod(self, name: str) -> None:
        if not self.pod_exists(name):
            return
        from podman.errors import APIError, NotFound

        try:
            self.client.pods.remove(name, force=True)
        except (APIError, NotFound) as exc:
            if not is_not_found(exc):
                raise RuntimeFailure(f"remove pod {name}: {message_of(exc)}") from exc

    def stop_pod(self, name: str, timeout: int, infra_first: bool = False) -> None:
        """Stop the pod. Podman 4.3 answers 304 and stops nothing while a member is between an exit
        and its restart (a crash loop), and a member's stop then is "already stopped" and does not
        stick either; the infra container's stop does (the restart policy's next start fails), so
        then it is stopped first, and each member still running after it. `infra_first` goes
        there at once (the watcher ending a crash loop: each 100 ms is one more restart)."""
        from podman.errors import APIError, NotFound

        if not infra_first:
            try:
                self.client.pods.get(name).stop(timeout=timeout)
            except (APIError, NotFound) as exc:
                if not is_not_found(exc):
                    raise RuntimeFailure(f"stop pod {name}: {message_of(exc)}") from exc
        status, pod = self._get(f"/pods/{quote(name, safe='')}/json")
        members = [c for c in (pod or {}).get("Containers") or [] if isinstance(c, dict)] if status == 200 else []
        infra = (pod or {}).get("InfraContainerID")
        settled = ("exited", "stopped", "created", "configured")
        if not infra_first and all(c.get("State") in settled for c in members):
            return
        for member in sorted(members, key=lambda c: c.get("Id") != infra):
            if member.get("State") not in settled or member.get("Id") == infra:
                with contextlib.suppress(RuntimeFailure, RuntimeUnavailable):  # ended just now
                    self._call(f"stop container {member.get('Name')}", self._stop_by_id, str(member.get("Id")),
                               timeout, infra_first and member.get("Id") == infra)

    def _stop_by_id(self, container_id: str, timeout: int, kill: bool = False) -> None:
        """A crash loop's infra container is killed (its pause process holds nothing to save): 0.08 s
        against the stop's 0.37 s, measured, and each 0.1 s is one more restart."""
        verb, params = ("kill", {"signal": "SIGKILL"}) if kill else ("stop", {"timeout": timeout})
        response = self.client.api.post(f"/containers/{container_id}/{verb}", params=params)
        if response.status_code not in (204, 304, 404, 409):
            response.raise_for_status()

    def create_container(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        self._call(f"create container {spec.container} from {spec.image}",
                   self.client.containers.create, spec.image, **container_kwargs(spec, self.limit_support(), labels))

    def _container(self, name: str, client: Any = None) -> Any:
        from podman.errors import APIError, NotFound

        try:
            return (client or self.client).containers.get(name)
        except (APIError, NotFound) as exc:
            if is_not_found(exc):
                return None
            raise RuntimeFailure(f"inspect container {name}: {message_of(exc)}") from exc
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def start_container(self, name: str) -> None:
        container = self._container(name)
        if container is None:
            raise RuntimeFailure(f"container {name} does not exist")
        if container.attrs.get("State", {}).get("Running"):
            return  # a concurrent start got there first
        try:
            self._call(f"start container {name}", container.start)
        except RuntimeFailure as exc:
            pod = container.attrs.get("Pod") and (container.attrs.get("PodName") or container.attrs.get("Pod"))
            causes = self._pod_start_errors(str(pod)) if pod and vague(exc.message) else []
            if not causes:
                raise
            message, hint = start_refused(name, causes)
            raise RuntimeFailure(message, details=causes[1:] if hint == OCI_HINT else causes, hint=hint) from exc

    def _pod_start_errors(self, pod: str) -> list[str]:
        return pod_start_causes(self.socket_path, pod) if self.socket_path is not None else []

    def remove_container(self, name: str) -> None:
        container = self._container(name)
        if container is not None:
            self._call(f"remove container {name}", container.remove, force=True)

    def inspect(self, name: str) -> ContainerState | None:
        status, attrs = self._get(f"/containers/{quote(name, safe='')}/json")
        if status == 404 or not attrs:
            return None
        return container_state(attrs)

    def stop_container(self, name: str, timeout: int) -> None:
        container = self._container(name)
        if container is not None:
            # ignore: "already stopped" (304, no body) is no failure: stopped is what was asked
            self._call(f"stop container {name}", container.stop, timeout=timeout, ignore=True)

    def signal_container(self, name: str, signal: str) -> None:
        container = self._container(name)
        if container is not None:
            self._call(f"signal container {name} ({signal})", container.kill, signal=signal)

    def put_secret(self, name: str, value: str) -> None:
        """Create (or replace) a Podman secret; the value goes in the request body, never argv."""
        from podman.errors import APIError, NotFound

        with contextlib.suppress(APIError, NotFound):  # none yet
            self.client.secrets.remove(name)
        self._call(f"create secret {name}", self.client.secrets.create, name, value.encode())

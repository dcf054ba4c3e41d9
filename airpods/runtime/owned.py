"""What is airpods' own: the runtime as commands see it, where only objects this user's airpods
made carry airpods' labels.

Podman copies an image's labels onto every container made from it, and anyone may put labels on
what they run by hand, so a label proves nothing about who made an object. Every pod, container,
volume and network airpods creates gets one more label, `io.airpods.seal`: an HMAC (SHA-256) over
what kind of object it is, its name and the io.airpods.* labels airpods gave it, keyed by a secret
in the user's airpods folder (0600). Reading back, an object whose seal checks out keeps those
labels (and only those of airpods' own: one an image added beside them is dropped); any other
object loses every io.airpods.* label it carries, so the code above sees it as what it is: not
airpods'. Destructive verbs refuse an object that is not airpods' own.

Objects made before airpods sealed them are taken over once, when the key is made (the first run
of a sealing airpods for this user): the containers then listed with airpods' labels whose image
carries none of the labels airpods reads, their pods and named volumes (docs/security.md)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from airpods.errors import RuntimeFailure
from airpods.plan.spec import AIRPODS_LABEL_PREFIX, LABEL_MANAGED, LABEL_SEAL, LABEL_VOLUMES, ServiceSpec
from airpods.runtime.port import ContainerState

KEY_NAME = "ownership-key"  # in airpods' secrets folder
VERSION = "v1"
SEP = "+"  # between the sealed labels' names: Podman's CLI (and so Quadlet's Label=) splits a label on ','



def _ours(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith(AIRPODS_LABEL_PREFIX) and k != LABEL_SEAL}


def _others(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith(AIRPODS_LABEL_PREFIX)}


@dataclass(frozen=True)
class Seal:
    """The HMAC over an object's kind, name and airpods labels, keyed by the user's secret."""

    key: bytes

    def _mac(self, kind: str, name: str, labels: Mapping[str, str], keys: list[str]) -> str:
        blob = json.dumps([VERSION, kind, name, [[k, labels[k]] for k in keys]], separators=(",", ":"))
        return hmac.new(self.key, blob.encode(), hashlib.sha256).hexdigest()

    def stamp(self, kind: str, name: str, labels: Mapping[str, str]) -> dict[str, str]:
        """`labels` with the seal over every io.airpods.* label among them."""
        keys = sorted(_ours(labels))
        short = SEP.join(k.removeprefix(AIRPODS_LABEL_PREFIX) for k in keys)
        return {**labels, LABEL_SEAL: f"{VERSION}:{self._mac(kind, name, labels, keys)}:{short}"}

    def check(self, kind: str, name: str, labels: Mapping[str, str]) -> dict[str, str] | None:
        """The labels airpods gave the object (others' beside them), or None where the seal is
        missing or wrong."""
        version, _, rest = str(labels.get(LABEL_SEAL, "")).partition(":")
        mac, _, short = rest.partition(":")
        if version != VERSION or not mac:
            return None
        keys = [AIRPODS_LABEL_PREFIX + k for k in short.split(SEP) if k]
        if any(k not in labels for k in keys) or not hmac.compare_digest(mac, self._mac(kind, name, labels, keys)):
            return None
        return {**_others(labels), **{k: labels[k] for k in keys}}


@dataclass
class TakenOver:
    """Objects of an airpods from before the seal, taken over when the key was made."""

    containers: set[str] = field(default_factory=set)  # ids
    pods: set[str] = field(default_factory=set)  # names
    volumes: set[str] = field(default_factory=set)  # names

    @staticmethod
    def load(path: Path) -> TakenOver:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return TakenOver()
        if not isinstance(data, dict):
            return TakenOver()
        sets = [{str(x) for x in data.get(k) or [] if isinstance(x, str)} if isinstance(data.get(k), list) else set()
                for k in ("containers", "pods", "volumes")]
        return TakenOver(*sets)

    def save(self, path: Path) -> None:
        from airpods.secrets import write_atomic

        write_atomic(path, json.dumps({"containers": sorted(self.containers), "pods": sorted(self.pods),
                                       "volumes": sorted(self.volumes)}, indent=1), 0o600)


def existing_seal(environ: Mapping[str, str]) -> Seal | None:
    """The user's seal when its key exists already (never made here: making it takes over a
    pre-seal airpods' objects, which needs the runtime)."""
    from airpods.paths import secrets_dir
    from airpods.secrets import SecretStore

    key = SecretStore(secrets_dir(environ), create=False).read(KEY_NAME)
    return Seal(key.encode()) if key else None


def take_over(inner: Any) -> TakenOver:
    """What a pre-seal airpods made, as Podman lists it now: containers with airpods' labels and no
    seal whose image carries none of the labels airpods reads (one that does could have given them
    their claim; another io.airpods.* label of an image's own proves nothing either way), their pods
    and the named volumes they list."""
    from airpods.config.values import airpods_labels

    read = airpods_labels()
    out = TakenOver()
    images: dict[str, bool] = {}
    for state in inner.list_managed():
        if LABEL_SEAL in state.labels:
            continue
        ref = state.image_id or state.image
        if ref not in images:
            labels = inner.image_labels(ref) if ref else None
            images[ref] = labels is not None and not read & set(labels)
        if not images[ref]:
            continue
        if state.infra:
            if state.pod:
                out.pods.add(state.pod)
            continue
        out.containers.add(state.id)
        if state.pod:
            out.pods.add(state.pod)
        out.volumes.update(v for v in state.labels.get(LABEL_VOLUMES, "").split(",") if v)
    return out


class OwnedRuntime:
    """A ContainerRuntime over another, sealing what it creates and trusting only sealed objects
    (or those taken over from an airpods before the seal). Every other verb passes through."""

    def __init__(self, inner: Any, environ: Mapping[str, str]):
        self.inner = inner
        self.environ = environ

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # the key and what was taken over ---------------------------------------------------------
    @cached_property
    def _state(self) -> tuple[Seal, TakenOver]:
        from airpods.paths import data_dir, secrets_dir
        from airpods.secrets import SecretStore

        store = SecretStore(secrets_dir(self.environ))
        record = data_dir(self.environ) / "ownership.json"
        if store.path(KEY_NAME).exists():
            return Seal(store.get(KEY_NAME).encode()), TakenOver.load(record)
        from airpods.paths import private_folder

        with _locked(private_folder(record.parent) / "ownership.lock"):  # not in the secrets folder: no secret
            if not store.path(KEY_NAME).exists():  # the first sealing airpods of this user
                take_over(self.inner).save(record)
            return Seal(store.get(KEY_NAME).encode()), TakenOver.load(record)

    @property
    def seal(self) -> Seal:
        return self._state[0]

    @property
    def taken_over(self) -> TakenOver:
        return self._state[1]

    # reading back ------------------------------------------------------------------------------
    def _trusted(self, state: ContainerState) -> ContainerState | None:
        """The state with the labels airpods gave it; None when it is not airpods' own."""
        if state.infra:
            labels = self.seal.check("pod", state.pod or "", state.labels)
            if labels is None and state.pod in self.taken_over.pods and LABEL_SEAL not in state.labels:
                labels = dict(state.labels)
        else:
            labels = self.seal.check("container", state.name, state.labels)
            if labels is None and state.id in self.taken_over.containers and LABEL_SEAL not in state.labels:
                labels = dict(state.labels)
        return None if labels is None else replace(state, labels=labels)

    def list_managed(self) -> list[ContainerState]:
        return [t for s in self.inner.list_managed() if (t := self._trusted(s)) is not None]

    def inspect(self, name: str) -> ContainerState | None:
        state = self.inner.inspect(name)
        if state is None:
            return None
        trusted = self._trusted(state)
        if trusted is not None:
            return trusted
        return replace(state, labels=_others(state.labels), unproven=bool(_ours(state.labels)))

    def _labels(self, kind: str, name: str, labels: dict[str, str] | None, taken: set[str]) -> dict[str, str] | None:
        if labels is None:
            return None
        checked = self.seal.check(kind, name, labels)
        if checked is not None:
            return checked
        return dict(labels) if name in taken and LABEL_SEAL not in labels else _others(labels)

    def pod_labels(self, name: str) -> dict[str, str] | None:
        return self._labels("pod", name, self.inner.pod_labels(name), self.taken_over.pods)

    def volume_labels(self, name: str) -> dict[str, str] | None:
        return self._labels("volume", name, self.inner.volume_labels(name), self.taken_over.volumes)

    # creating ------------------------------------------------------------------------------------
    def ensure_network(self, name: str, labels: dict[str, str] | None = None) -> bool:
        return self.inner.ensure_network(name, self.seal.stamp("network", name, labels or {LABEL_MANAGED: "true"}))

    def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> bool:
        return self.inner.ensure_volume(name, self.seal.stamp("volume", name, labels or {LABEL_MANAGED: "true"}))

    def create_pod(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        self.inner.create_pod(spec, self.seal.stamp("pod", spec.pod, spec.labels if labels is None else labels))

    def create_container(self, spec: ServiceSpec, labels: dict[str, str] | None = None) -> None:
        self.inner.create_container(spec, self.seal.stamp("container", spec.container,
                                                          spec.labels if labels is None else labels))

    # changing what exists: airpods' own only ---------------------------------------------------
    def _refuse(self, what: str, name: str) -> RuntimeFailure:
        return RuntimeFailure(f"refusing to {what} {name}: this user's airpods did not create it (it carries no "
                              "seal of airpods', whatever its labels say)",
                              hint="it is someone else's: leave it, or remove it yourself with podman")

    def _own_container(self, name: str, what: str) -> bool:
        state = self.inner.inspect(name)
        if state is None:
            return False
        if self._trusted(state) is None:
            raise self._refuse(what, f"container {name}")
        return True

    def _own_pod(self, name: str, what: str) -> bool:
        labels = self.inner.pod_labels(name)
        if labels is None:
            return False
        if not self._labels("pod", name, labels, self.taken_over.pods).get(LABEL_MANAGED):
            raise self._refuse(what, f"pod {name}")
        return True

    def remove_pod(self, name: str) -> None:
        if self._own_pod(name, "remove"):
            self.inner.remove_pod(name)

    def stop_pod(self, name: str, timeout: int, infra_first: bool = False) -> None:
        if self._own_pod(name, "stop"):
            if infra_first:
                self.inner.stop_pod(name, timeout, infra_first=True)
            else:
                self.inner.stop_pod(name, timeout)

    def remove_container(self, name: str) -> None:
        if self._own_container(name, "remove"):
            self.inner.remove_container(name)

    def stop_container(self, name: str, timeout: int) -> None:
        if self._own_container(name, "stop"):
            self.inner.stop_container(name, timeout)

    def signal_container(self, name: str, signal: str) -> None:
        if self._own_container(name, "signal"):
            self.inner.signal_container(name, signal)

    def remove_volume(self, name: str) -> bool:
        labels = self.volume_labels(name)
        if labels is None:
            return False
        if not labels.get(LABEL_MANAGED):
            raise self._refuse("delete", f"volume {name}")
        return self.inner.remove_volume(name)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

"""The `podman` target: what Podman 4.3's `kube play` runs, for `podman-kube@.service` at boot.

One Pod per service, ports published on their host IP and port as airpods publishes them, named
volumes as claims (kube play uses the existing Podman volume of that name, or creates it: no
PersistentVolumeClaim documents, which 4.3 refuses for a volume that exists). `kind: Secret` does
not work before Podman 4.5, so a llama.cpp API key is a hostPath mount of airpods' own 0600 key
file, read with llama-server's --api-key-file: no key is ever in the YAML. Services that need
other secrets in their environment (Open WebUI) cannot be exported this way."""

from __future__ import annotations

from typing import Any

from airpods.errors import UsageError
from airpods.export.common import dns, labels
from airpods.plan.router import PRESET_PATH
from airpods.plan.spec import ServiceSpec

KEY_PATH = "/run/secrets/llama-api-key"


def exportable(spec: ServiceSpec) -> str | None:
    """None, or why this service cannot go to the podman target."""
    other = sorted(k for k in spec.secret_env if k in spec.env and k != "LLAMA_API_KEY")
    if other:
        return (f"{spec.name} needs {', '.join(other)} in its environment, which Podman 4.3's kube play can only "
                "take from the YAML itself; export it with --target kubernetes, or run it with airpods start")
    return None


def pod(spec: ServiceSpec, key_file: str | None) -> dict[str, Any]:
    args = list(spec.command)
    env = [{"name": k, "value": v} for k, v in spec.env.items() if k not in spec.secret_env]
    mounts, volumes = [], []
    if "LLAMA_API_KEY" in spec.env and spec.env["LLAMA_API_KEY"]:
        if key_file is None:
            raise UsageError(f"{spec.name}: its API key file does not exist yet",
                             hint=f"create it once: airpods config render {spec.name} --show-secrets >/dev/null")
        args += ["--api-key-file", KEY_PATH]
        mounts.append({"name": "api-key", "mountPath": KEY_PATH, "readOnly": True})
        volumes.append({"name": "api-key", "hostPath": {"path": key_file, "type": "File"}})
    for i, v in enumerate(spec.volumes):
        name = f"v{i}"
        mounts.append({"name": name, "mountPath": v.target, **({"readOnly": True} if v.mode == "ro" else {})})
        if v.is_named:
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": v.source}})
        else:
            volumes.append({"name": name, "hostPath": {"path": v.source,
                                                       **({"type": "File"} if v.target == PRESET_PATH else {})}})
    container: dict[str, Any] = {"name": dns(spec.name), "image": spec.image}
    if spec.entrypoint is not None:
        container["command"] = list(spec.entrypoint)
    if args:
        container["args"] = args
    if env:
        container["env"] = env
    if spec.ports:
        container["ports"] = [{"containerPort": p.container, "hostPort": p.host, "hostIP": p.host_ip}
                              for p in spec.ports]
    if mounts:
        container["volumeMounts"] = mounts
    # No probes: 4.3 has no startupProbe, and a liveness probe would restart a model still loading.
    body: dict[str, Any] = {"restartPolicy": "Always", "containers": [container]}
    if volumes:
        body["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": dns(spec.pod), "labels": labels(spec)},
            "spec": body}


def documents(specs: list[ServiceSpec], key_files: dict[str, str | None], named: bool,
              ) -> tuple[list[dict[str, Any]], list[str]]:
    """Pods for the services that can go; a note (or, for a service named on the command line, an
    error) for those that cannot."""
    docs, notes = [], []
    for spec in specs:
        why = exportable(spec)
        if why and named:
            raise UsageError(f"cannot export {spec.name} to the podman target", hint=why)
        if why:
            notes.append(f"skipped {why}")
            continue
        docs.append(pod(spec, key_files.get(spec.name)))
    return docs, notes

"""The `kubernetes` target: per service a Deployment (1 replica, Recreate) and a Service named after
its first network alias (so the in-cluster URLs airpods wired, e.g. http://llamacpp:8080/v1, work
unchanged), a PersistentVolumeClaim per named volume, one Secret for every key, a ConfigMap per
router preset, the hub's configuration and routes (a ConfigMap) and its hosts' CAs (a Secret), and
optionally a Job per pulled model that downloads it into its claim."""

from __future__ import annotations

from typing import Any

from airpods.export.common import (
    PLACEHOLDER,
    SECRET_NAME,
    VolumeFacts,
    dns,
    gib,
    labels,
    memory_estimate,
    probes,
    resources,
    secret_key,
)
from airpods.kinds import kind_of
from airpods.kinds.hub import PORT as HUB_PORT
from airpods.plan import hub as hub_plan
from airpods.plan import prometheus as prometheus_plan
from airpods.plan.gateway import CADDYFILE, ETC, KEYS_FILE
from airpods.plan.router import PRESET_PATH
from airpods.plan.spec import HEALTH_KEY_PATH, ServiceSpec

MODELS_JOB_IMAGE = "docker.io/curlimages/curl:8.10.1"


def _env(spec: ServiceSpec) -> list[dict[str, Any]]:
    out = []
    for key, value in spec.env.items():
        if key in spec.secret_env:
            out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME,
                                                                     "key": secret_key(spec, key)}}})
        else:
            out.append({"name": key, "value": value})
    return out


def _volumes(spec: ServiceSpec, model_volume: str | None) -> tuple[list[dict], list[dict]]:
    mounts, volumes = [], []
    for i, v in enumerate(spec.volumes):
        name = f"v{i}-{dns(v.source)}"[:63].rstrip("-")
        mount: dict[str, Any] = {"name": name, "mountPath": v.target}
        if v.mode == "ro":
            mount["readOnly"] = True
        if v.target == PRESET_PATH and spec.router is not None:
            mount["subPath"] = "models.ini"
            volumes.append({"name": name, "configMap": {"name": f"{dns(spec.name)}-preset"}})
        elif v.target == ETC and kind_of(spec.kind).door:  # the Caddyfile and the key file, in one folder
            volumes.append({"name": name, "projected": {"sources": [
                {"configMap": {"name": f"{dns(spec.name)}-caddyfile"}},
                {"secret": {"name": f"{dns(spec.name)}-keys"}}]}})
        elif v.target == hub_plan.ETC and kind_of(spec.kind).model_router:  # its configuration, the hosts' CAs
            sources: list[dict[str, Any]] = [{"configMap": {"name": f"{dns(spec.name)}-config"}}]
            if hosts_of(spec):
                sources.append({"secret": {"name": f"{dns(spec.name)}-hosts", "items": [
                    {"key": f"{h}.pem", "path": f"{hub_plan.HOSTS_DIR}/{h}.pem"} for h in hosts_of(spec)]}})
            volumes.append({"name": name, "projected": {"sources": sources}})
        elif v.target == prometheus_plan.ETC and kind_of(spec.kind).scraper:  # its scrape configuration
            volumes.append({"name": name, "configMap": {"name": f"{dns(spec.name)}-config"}})
        elif v.target == HEALTH_KEY_PATH:  # the probe's key, from the Secret
            mount["subPath"] = "health.key"
            volumes.append({"name": name, "secret": {"secretName": SECRET_NAME, "items": [
                {"key": secret_key(spec, HEALTH_KEY), "path": "health.key"}]}})
        elif v.is_named:
            claim = {"claimName": dns(v.source)}
            if v.mode == "ro" or v.source == model_volume:
                claim["readOnly"] = True
            volumes.append({"name": name, "persistentVolumeClaim": claim})
        else:
            volumes.append({"name": name, "hostPath": {"path": v.source}})
        mounts.append(mount)
    return mounts, volumes


def _quantity(size: str) -> str:
    """A Podman size (64m, 1g, 512b) as a Kubernetes quantity (64Mi, 1Gi, 512)."""
    number, unit = (size[:-1], size[-1].lower()) if size[-1].isalpha() else (size, "b")
    return number + {"b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit]




def security_context(spec: ServiceSpec) -> dict[str, Any]:
    """The container's securityContext from its Confinement (a kube Pod has no init of Podman's)."""
    c = spec.confinement
    out: dict[str, Any] = {}
    if c.cap_drop or c.cap_add:
        out["capabilities"] = {k: list(v) for k, v in (("drop", c.cap_drop), ("add", c.cap_add)) if v}
    if c.no_new_privileges:
        out["allowPrivilegeEscalation"] = False
    if c.read_only:
        out["readOnlyRootFilesystem"] = True
    if c.profile == "strict" and kind_of(spec.kind).run_as is not None:  # its image runs as a user of its own
        out.update({"runAsNonRoot": True, "runAsUser": kind_of(spec.kind).run_as})
    return out


def deployment(spec: ServiceSpec, facts: VolumeFacts, model_volume: str | None) -> dict[str, Any]:
    mounts, volumes = _volumes(spec, model_volume)
    container: dict[str, Any] = {"name": dns(spec.name), "image": spec.image}
    if spec.entrypoint is not None:
        container["command"] = list(spec.entrypoint)
    if spec.command:
        container["args"] = list(spec.command)
    if spec.env:
        container["env"] = _env(spec)
    if _ports(spec):
        container["ports"] = [{"name": "http" if i == 0 else f"p{i}", "containerPort": p}
                              for i, p in enumerate(_ports(spec))]
    if mounts:
        container["volumeMounts"] = mounts
    container.update(probes(spec))
    context = security_context(spec)
    if context:
        container["securityContext"] = context
    for i, (path, size) in enumerate(spec.confinement.tmpfs):  # what strict writes in memory
        mounts.append({"name": f"tmp{i}", "mountPath": path})
        volumes.append({"name": f"tmp{i}", "emptyDir": {"medium": "Memory", "sizeLimit": _quantity(size)}})
    res = resources(spec, memory_estimate(spec, facts))
    if res:
        container["resources"] = res
    pod: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    template: dict[str, Any] = {"labels": labels(spec)}
    if kind_of(spec.kind).llama_server and "--metrics" in spec.command and spec.ports:  # the usual scrape annotations
        template["annotations"] = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
                                   "prometheus.io/port": str(spec.ports[0].container)}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": dns(spec.name), "labels": labels(spec)},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": {"app.kubernetes.io/name": dns(spec.name)}},
                     "template": {"metadata": template, "spec": pod}}}


def _ports(spec: ServiceSpec) -> list[int]:
    """The container ports others reach it on: its own, or the hub's (never published on a host,
    reached by the gateway on the network; in a cluster, through its Service)."""
    return [p.container for p in spec.ports] or ([HUB_PORT] if kind_of(spec.kind).model_router else [])


def hosts_of(spec: ServiceSpec) -> list[str]:
    """The hub's hosts, in its order."""
    return [mid.removeprefix("host-") for mid, _title, _relay in spec.hub_members if mid.startswith("host-")]


def service(spec: ServiceSpec) -> dict[str, Any] | None:
    if not _ports(spec):
        return None
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": dns(spec.aliases[0] if spec.aliases else spec.name), "labels": labels(spec)},
            "spec": {"selector": {"app.kubernetes.io/name": dns(spec.name)},
                     "ports": [{"name": "http" if i == 0 else f"p{i}", "port": p, "targetPort": p}
                               for i, p in enumerate(_ports(spec))]}}


def claims(specs: list[ServiceSpec], facts: VolumeFacts, model_volume: str | None) -> list[dict[str, Any]]:
    out = []
    for volume in dict.fromkeys(v.source for s in specs for v in s.volumes if v.is_named):
        is_models = volume == model_volume
        size = gib(int(facts.sizes[volume] * 1.1)) if volume in facts.sizes else ("20Gi" if is_models else "10Gi")
        modes = ["ReadOnlyMany", "ReadWriteOnce"] if is_models else ["ReadWriteOnce"]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": dns(volume), "labels": {"app.kubernetes.io/part-of": "airpods"}},
                    "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}})
    return out


HEALTH_KEY = "AIRPODS_HEALTH_KEY"  # its name in the Secret (as if it were an environment variable)


def _read_key(path: str) -> str:
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return PLACEHOLDER  # not made yet (made by the first start)


def secret(specs: list[ServiceSpec], show: bool) -> dict[str, Any] | None:
    data = {secret_key(s, k): (s.env[k] if show else PLACEHOLDER) for s in specs for k in sorted(s.secret_env)
            if k in s.env}
    for s in specs:  # a llama.cpp health probe's own key (a 0600 file of airpods' on this host)
        if s.health_key_file:
            data[secret_key(s, HEALTH_KEY)] = _read_key(s.health_key_file) if show else PLACEHOLDER
    if not data:
        return None
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "labels": {"app.kubernetes.io/part-of": "airpods"}},
            "stringData": data}


def presets(specs: list[ServiceSpec]) -> list[dict[str, Any]]:
    """A router's preset, and Prometheus' scrape and web configurations (which hold no key: the keys
    come in from the Secret as environment variables; web.yml has the password's bcrypt hash only),
    as ConfigMaps."""
    out = [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{dns(s.name)}-preset", "labels": labels(s)},
            "data": {"models.ini": s.router_preset}} for s in specs if s.router is not None]
    return out + [{"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": f"{dns(s.name)}-config", "labels": labels(s)},
                   "data": {path.rsplit("/", 1)[-1]: text for path, text in s.config_files}}
                  for s in specs if kind_of(s.kind).scraper and s.config_files]


EMPTY_KEYS = ("# No keys in this export: fill this Secret with the keys.caddy that airpods keys writes, or "
              "export with --show-secrets.\nmap {http.request.header.Authorization} {http.auth.user.id} {\n"
              "\tdefault \"\"\n}\n")


def gateway_documents(specs: list[ServiceSpec], keys_file: str | None) -> list[dict[str, Any]]:
    """The gateway's Caddyfile (a ConfigMap) and its person keys (a Secret: the only place they are)."""
    out: list[dict[str, Any]] = []
    for s in (s for s in specs if kind_of(s.kind).door):
        out += [{"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{dns(s.name)}-caddyfile", "labels": labels(s)},
                 "data": {CADDYFILE: s.gateway_config}},
                {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": f"{dns(s.name)}-keys", "labels": labels(s)},
                 "stringData": {KEYS_FILE: keys_file if keys_file is not None else EMPTY_KEYS}}]
    return out


def hub_documents(specs: list[ServiceSpec], files: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The hub's configuration (as a cluster runs it: plan/hub.py for_kubernetes) with the routes of
    the last refresh on this machine (a ConfigMap), and each host's CA (a Secret). `files`: hub ->
    its route files and "hosts/NAME.pem" as they are in its folder here."""
    out: list[dict[str, Any]] = []
    for s in (s for s in specs if kind_of(s.kind).model_router):
        got = files.get(s.name, {})
        static = next(text for path, text in s.config_files if path.endswith(f"/{hub_plan.STATIC}"))
        data = {hub_plan.STATIC: hub_plan.for_kubernetes(static), hub_plan.ROUTES: got.get(hub_plan.ROUTES, ""),
                hub_plan.MAP: got.get(hub_plan.MAP, ""), hub_plan.LISTING: got.get(hub_plan.LISTING,
                                                                                   hub_plan.EMPTY_LISTING)}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{dns(s.name)}-config",
                                                                           "labels": labels(s)}, "data": data})
        if hosts_of(s):
            cas = {f"{h}.pem": got.get(f"{hub_plan.HOSTS_DIR}/{h}.pem", PLACEHOLDER) for h in hosts_of(s)}
            out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": f"{dns(s.name)}-hosts", "labels": labels(s)}, "stringData": cas})
    return out


def model_jobs(specs: list[ServiceSpec], facts: VolumeFacts, model_volume: str | None) -> tuple[list[dict], list[str]]:
    """A Job per pulled model the exported services use; the names of those that need filling by hand."""
    from airpods.orchestrate.preflight import wanted_models

    manifest = facts.manifests.get(model_volume or "", {})
    jobs, by_hand = [], []
    for name in dict.fromkeys(f for s in specs for f in wanted_models(s)):
        entry = manifest.get(name) or {}
        source, sha = str(entry.get("source") or ""), entry.get("sha256")
        if "@" not in source or not source.startswith(("http://", "https://")) or not sha:
            by_hand.append(name)
            continue
        endpoint_repo, _, rev_path = source.rpartition("@")
        revision, _, path = rev_path.partition("/")
        url = f"{endpoint_repo}/resolve/{revision}/{path}"
        # The values are the shell's positional arguments, never part of its text: a revision or a
        # mirror's address (from the manifest) cannot add a command.
        script = ('set -e; cd /models; [ -f "$2" ] && exit 0; curl -fL --retry 5 -C - -o ".$2.part" "$1"; '
                  'echo "$3  .$2.part" | sha256sum -c -; mv ".$2.part" "$2"')
        jobs.append({"apiVersion": "batch/v1", "kind": "Job",
                     "metadata": {"name": dns(f"fetch-{name.removesuffix('.gguf')}"),
                                  "labels": {"app.kubernetes.io/part-of": "airpods"}},
                     "spec": {"backoffLimit": 3, "template": {"spec": {
                         "restartPolicy": "OnFailure",
                         "containers": [{"name": "fetch", "image": MODELS_JOB_IMAGE, "command": ["/bin/sh", "-c"],
                                         "args": [script, "fetch", url, name, str(sha)],
                                         "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
                         "volumes": [{"name": "models",
                                      "persistentVolumeClaim": {"claimName": dns(model_volume or "models")}}]}}}})
    return jobs, by_hand


def documents(specs: list[ServiceSpec], facts: VolumeFacts, *, model_volume: str | None, show_secrets: bool,
              models_job: bool, gateway_keys: str | None = None,
              hub_files: dict[str, dict[str, str]] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every document, and notes for the person running the export. `gateway_keys`: the gateway's
    keys.caddy (with --show-secrets), else its Secret holds no key. `hub_files`: hub_documents'."""
    notes: list[str] = []
    docs: list[dict[str, Any]] = []
    if (sec := secret(specs, show_secrets)) is not None:
        docs.append(sec)
        if not show_secrets:
            notes.append(f"the Secret {SECRET_NAME} holds {PLACEHOLDER} placeholders: fill them (kubectl edit secret "
                         f"{SECRET_NAME}), or export with --show-secrets; a llama.cpp key in OPENAI_API_KEYS must "
                         "equal that service's LLAMA_API_KEY")
    docs += presets(specs) + gateway_documents(specs, gateway_keys if show_secrets else None)
    docs += hub_documents(specs, hub_files or {})
    for s in (s for s in specs if kind_of(s.kind).model_router):
        routed = (hub_files or {}).get(s.name, {}).get(hub_plan.MAP, "")
        notes.append(f"{s.name}: its routes are those of the last refresh on this machine "
                     f"({len(routed.splitlines())} models); nothing refreshes them in the cluster: export again "
                     "after `airpods hosts refresh`, and each host's gateway must be reachable from the cluster")
    docs += claims(specs, facts, model_volume)
    for s in (s for s in specs if kind_of(s.kind).door):
        if not show_secrets:
            notes.append(f"the Secret {dns(s.name)}-keys holds no person key: export with --show-secrets, or put "
                         "the keys.caddy that airpods keys writes into it")
        notes.append(f"{s.name}: its certificate covers {', '.join(s.gateway_names)}; add the name clients use in "
                     f"the cluster to services.{s.name}.hostnames")
    if models_job:
        jobs, by_hand = model_jobs(specs, facts, model_volume)
        docs += jobs
        if by_hand:
            notes.append(f"no download source is recorded for {', '.join(by_hand)} (imported, not pulled): copy "
                         "them into the model claim by hand (kubectl cp to a pod that mounts it)")
    for spec in specs:
        docs.append(deployment(spec, facts, model_volume))
        if (svc := service(spec)) is not None:
            docs.append(svc)
        if spec.variant == "vulkan":
            notes.append(f"{spec.name}: Vulkan has no standard Kubernetes device plugin; add your plugin's "
                         "resource to its Deployment")
    return docs, notes

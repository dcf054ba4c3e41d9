"""Quadlet units (Podman >= 4.4; `.pod` files need 5.0) from the resolved specs: one `.network`,
one `.volume` per named volume, per service a `.pod` (ports, aliases) and a `.container` (image,
devices, argv, env, mounts, resources, restart policy), `Requires=`/`After=` from depends_on, and
every secret by reference to Podman's secret store (`Secret=NAME,type=env,target=VAR`), never its
value. Pure: specs in, file texts out."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.plan.spec import LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, ServiceSpec

MARK = "# Written by airpods export quadlet; `airpods export quadlet --install` may replace it."
RESTART = {"no": "no", "always": "always", "on-failure": "on-failure", "unless-stopped": "always"}


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str


@dataclass(frozen=True)
class SecretRef:
    """A Podman secret a unit refers to; `value` is for `--install` alone, never written out."""

    name: str
    service: str
    env: str
    value: str


def quote(word: str) -> str:
    """One systemd word: quoted, with systemd's specifiers (%) and variables ($) kept literal."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def secret_name(spec: ServiceSpec, env: str) -> str:
    return f"airpods-{spec.project}-{spec.name}-{env.lower().replace('_', '-')}"


def _labels(spec: ServiceSpec) -> list[str]:
    keep = {LABEL_MANAGED: "true", LABEL_PROJECT: spec.project, LABEL_SERVICE: spec.name,
            **dict(spec.extra_labels)}
    return [f"Label={quote(f'{k}={v}')}" for k, v in keep.items()]


def _resource_labels(spec: ServiceSpec) -> list[str]:
    return [f"Label={quote(f'{k}={v}')}" for k, v in spec.resource_labels.items()]


def network_unit(spec: ServiceSpec) -> UnitFile:
    lines = [MARK, "[Network]", f"NetworkName={spec.network}", *_resource_labels(spec)]
    return UnitFile(f"{spec.network}.network", "\n".join(lines) + "\n")


def volume_unit(name: str, spec: ServiceSpec) -> UnitFile:
    lines = [MARK, "[Volume]", f"VolumeName={name}", *_resource_labels(spec)]
    return UnitFile(f"{name}.volume", "\n".join(lines) + "\n")


def pod_unit(spec: ServiceSpec) -> UnitFile:
    lines = [MARK, "[Unit]", f"Description=airpods pod {spec.pod} (service {spec.name})", "", "[Pod]",
             f"PodName={spec.pod}", f"Network={spec.network}.network"]
    lines += [f"NetworkAlias={a}" for a in spec.aliases]
    lines += [f"PublishPort={('[' + p.host_ip + ']') if ':' in p.host_ip else p.host_ip}:{p.host}:{p.container}"
              for p in spec.ports]
    return UnitFile(f"{spec.pod}.pod", "\n".join(lines) + "\n")


def container_unit(spec: ServiceSpec, specs: dict[str, ServiceSpec]) -> tuple[UnitFile, list[SecretRef]]:
    deps = [specs[d] for d in spec.depends_on if d in specs]
    unit = [MARK, "[Unit]", f"Description=airpods {spec.kind} service {spec.name}"]
    for dep in deps:  # Open WebUI after its backends
        unit += [f"Requires={dep.name}.service", f"After={dep.name}.service"]
    box = ["[Container]", f"ContainerName={spec.container}", f"Pod={spec.pod}.pod", f"Image={spec.image}"]
    if spec.entrypoint is not None:
        box.append(f"Entrypoint={quote(spec.entrypoint[0])}" if len(spec.entrypoint) == 1 else
                   f"PodmanArgs=--entrypoint={quote(_json(spec.entrypoint))}")
    if spec.command:
        box.append("Exec=" + " ".join(quote(a) for a in spec.command))
    secrets = []
    for key, value in spec.env.items():
        if key in spec.secret_env and value:
            ref = SecretRef(secret_name(spec, key), spec.name, key, value)
            secrets.append(ref)
            box.append(f"Secret={ref.name},type=env,target={key}")
        else:
            box.append(f"Environment={quote(f'{key}={value}')}")
    for v in spec.volumes:
        source = f"{v.source}.volume" if v.is_named else v.source
        box.append(f"Volume={source}:{v.target}" + (":ro" if v.mode == "ro" else ""))
    box += [f"AddDevice={d}" for d in spec.devices]
    if "label=disable" in spec.security_opt:
        box.append("SecurityLabelDisable=true")
    args = [f"--cpuset-cpus={spec.cpuset}"] if spec.cpuset else []
    args += [f"--memory={spec.memory}"] if spec.memory else []
    args += [f"--cpus={spec.cpus:g}"] if spec.cpus else []
    if args:
        box.append("PodmanArgs=" + " ".join(args))
    box += _labels(spec)
    box.append(f"StopTimeout={spec.stop_timeout}")
    service = ["[Service]", f"Restart={RESTART.get(spec.restart_policy, 'always')}",
               f"TimeoutStopSec={spec.stop_timeout + 20}", "TimeoutStartSec=900"]  # a first pull can be slow
    install = ["[Install]", "WantedBy=default.target"]
    text = "\n".join([*unit, "", *box, "", *service, "", *install]) + "\n"
    return UnitFile(f"{spec.name}.container", text), secrets


def _json(items: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(items))


def documents(specs: list[ServiceSpec]) -> tuple[list[UnitFile], list[SecretRef]]:
    """Every unit the services need, and the secrets they refer to."""
    if not specs:
        return [], []
    by_name = {s.name: s for s in specs}
    files = [network_unit(specs[0])]
    seen: set[str] = set()
    for spec in specs:
        for v in spec.volumes:
            if v.is_named and v.source not in seen:
                seen.add(v.source)
                files.append(volume_unit(v.source, spec))
    secrets: list[SecretRef] = []
    for spec in specs:
        files.append(pod_unit(spec))
        unit, refs = container_unit(spec, by_name)
        files.append(unit)
        secrets += refs
    return files, secrets

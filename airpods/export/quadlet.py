"""Quadlet units (Podman >= 4.4; `.pod` files need 5.0) from the resolved specs: one `.network`,
one `.volume` per named volume, per service a `.pod` (ports, aliases) and a `.container` (image,
devices, argv, env, mounts, resources, restart policy), `Requires=`/`After=` from depends_on, and
every secret by reference to Podman's secret store (`Secret=NAME,type=env,target=VAR`), never its
value. Pure: specs in, file texts out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airpods.plan.spec import DEFAULT_PROJECT, LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, ServiceSpec

MARK = "# Written by airpods export quadlet; `airpods export quadlet --install` may replace it."
PROJECT_MARK = "# airpods project: "  # the second line: whose unit it is (none: the default project's)
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


_C_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(word: str) -> str:
    """One systemd word: quoted, with systemd's specifiers (%) and variables ($) kept literal and
    every control character written as a C escape (which Quadlet and systemd read back), so that no
    value can end its line and start another (a `[Service]` or an `ExecStartPre=` of its own)."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    escaped = "".join(_C_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
                      for c in escaped)
    return f'"{escaped}"'


def raw(value: str) -> str:
    """A value Quadlet takes as written, quotes and all (Volume=, PublishPort=, NetworkAlias=): the
    schema keeps control characters out of what reaches them; this refuses one all the same."""
    from airpods.config.values import has_control

    if has_control(value):
        from airpods.errors import UsageError

        raise UsageError(f"{value!r} holds a control character and cannot go into a Quadlet unit",
                         hint="remove the line break or control character from the config value")
    return value


def stem(spec: ServiceSpec, name: str) -> str:
    """A unit file's name without its suffix: the project's name first for a project other than the
    default, so that two projects' units never replace each other in one folder."""
    if spec.project == DEFAULT_PROJECT or name.startswith(f"{spec.project}-"):
        return name  # the default project's, or named after its project already (its pods and containers)
    return f"{spec.project}-{name}"


def _head(spec: ServiceSpec) -> list[str]:
    return [MARK, f"{PROJECT_MARK}{spec.project}"]


def secret_name(spec: ServiceSpec, env: str) -> str:
    return f"airpods-{spec.project}-{spec.name}-{env.lower().replace('_', '-')}"


def _label_lines(ours: dict[str, str], spec: ServiceSpec, what: tuple[str, str], seal: Any) -> list[str]:
    """The user's runtime.labels, then airpods' own, last, so that none of them is overridden;
    sealed (runtime/owned.py) for `what` (kind, name) when `seal` is given: what this user's
    exported units create is this user's airpods' doing."""
    labels = {**{k: v for k, v in spec.extra_labels if k not in ours}, **ours}
    if seal is not None:
        labels = seal.stamp(*what, labels)
    return [f"Label={quote(f'{k}={v}')}" for k, v in labels.items()]


def _labels(spec: ServiceSpec, seal: Any = None) -> list[str]:
    return _label_lines({LABEL_MANAGED: "true", LABEL_PROJECT: spec.project, LABEL_SERVICE: spec.name}, spec,
                        ("container", spec.container), seal)


def _resource_labels(spec: ServiceSpec, what: tuple[str, str], seal: Any) -> list[str]:
    return _label_lines({LABEL_MANAGED: "true", LABEL_PROJECT: spec.project}, spec, what, seal)


def network_unit(spec: ServiceSpec, seal: Any = None) -> UnitFile:
    lines = [*_head(spec), "[Network]", f"NetworkName={spec.network}",
             *_resource_labels(spec, ("network", spec.network), seal)]
    return UnitFile(f"{stem(spec, spec.network)}.network", "\n".join(lines) + "\n")


def volume_unit(name: str, spec: ServiceSpec, seal: Any = None) -> UnitFile:
    lines = [*_head(spec), "[Volume]", f"VolumeName={name}", *_resource_labels(spec, ("volume", name), seal)]
    return UnitFile(f"{stem(spec, name)}.volume", "\n".join(lines) + "\n")


def pod_unit(spec: ServiceSpec) -> UnitFile:
    lines = [*_head(spec), "[Unit]", f"Description=airpods pod {spec.pod} (service {spec.name})", "", "[Pod]",
             f"PodName={spec.pod}", f"Network={stem(spec, spec.network)}.network"]
    lines += [f"NetworkAlias={raw(a)}" for a in spec.aliases]
    lines += [f"PublishPort={raw(_port(p.host_ip, p.host, p.container))}" for p in spec.ports]
    return UnitFile(f"{stem(spec, spec.pod)}.pod", "\n".join(lines) + "\n")


def _port(host_ip: str, host: int, container: int) -> str:
    return f"{('[' + host_ip + ']') if ':' in host_ip else host_ip}:{host}:{container}"


def container_unit(spec: ServiceSpec, specs: dict[str, ServiceSpec],
                   seal: Any = None) -> tuple[UnitFile, list[SecretRef]]:
    deps = [specs[d] for d in spec.depends_on if d in specs]
    unit = [*_head(spec), "[Unit]", f"Description=airpods {spec.kind} service {spec.name}"]
    for dep in deps:  # Open WebUI after its backends
        unit += [f"Requires={stem(dep, dep.name)}.service", f"After={stem(dep, dep.name)}.service"]
    box = ["[Container]", f"ContainerName={spec.container}", f"Pod={stem(spec, spec.pod)}.pod", f"Image={spec.image}"]
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
        source = f"{stem(spec, v.source)}.volume" if v.is_named else v.source
        box.append("Volume=" + raw(f"{source}:{v.target}" + (":ro" if v.mode == "ro" else "")))
    box += [f"AddDevice={quote(d)}" for d in spec.devices]
    box += _confinement(spec.confinement)
    if "label=disable" in spec.security_opt:
        box.append("SecurityLabelDisable=true")
    args = [f"--cpuset-cpus={spec.cpuset}"] if spec.cpuset else []
    args += [f"--memory={spec.memory}"] if spec.memory else []
    args += [f"--cpus={spec.cpus:g}"] if spec.cpus else []
    if args:
        box.append("PodmanArgs=" + " ".join(quote(a) for a in args))
    box += _labels(spec, seal) + _health(spec)
    box.append(f"StopTimeout={spec.stop_timeout}")
    service = ["[Service]", f"Restart={RESTART.get(spec.restart_policy, 'always')}",
               f"TimeoutStopSec={spec.stop_timeout + 20}", "TimeoutStartSec=900"]  # a first pull can be slow
    install = ["[Install]", "WantedBy=default.target"]
    text = "\n".join([*unit, "", *box, "", *service, "", *install]) + "\n"
    return UnitFile(f"{stem(spec, spec.name)}.container", text), secrets


def _confinement(c) -> list[str]:
    """The same least privilege `start` gives (plan/hardening.py): only the tmpfs it names, as
    the API does (Quadlet's ReadOnlyTmpfs would add /run and /var/tmp)."""
    out = [f"DropCapability={'all' if c == 'ALL' else c}" for c in c.cap_drop]
    out += [f"AddCapability={' '.join(c.cap_add)}"] if c.cap_add else []
    out += ["NoNewPrivileges=true"] if c.no_new_privileges else []
    out += ["ReadOnly=true", "ReadOnlyTmpfs=false"] if c.read_only else []
    out += [f"Tmpfs={path}:rw,size={size}" for path, size in c.tmpfs]
    return out + (["RunInit=true"] if c.init else [])


def _health(spec: ServiceSpec) -> list[str]:
    """The same check `start` gives the container. Quadlet copies HealthCmd= into ExecStart as it
    stands, where systemd reads % and $: both are doubled (the check holds no control character)."""
    h = spec.health
    if not h.check:
        return []
    check = raw(h.check).replace("%", "%%").replace("$", "$$")
    return [f"HealthCmd={check}", f"HealthInterval={h.interval:g}s", f"HealthRetries={h.retries}",
            f"HealthStartPeriod={h.start_period:g}s", f"HealthTimeout={h.check_timeout:g}s",
            "HealthOnFailure=restart"]


def _json(items: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(items))


def documents(specs: list[ServiceSpec], seal: Any = None) -> tuple[list[UnitFile], list[SecretRef]]:
    """Every unit the services need, and the secrets they refer to; `seal`: the user's (what the
    units create is then airpods' own to every command)."""
    if not specs:
        return [], []
    by_name = {s.name: s for s in specs}
    files = [network_unit(specs[0], seal)]
    seen: set[str] = set()
    for spec in specs:
        for v in spec.volumes:
            if v.is_named and v.source not in seen:
                seen.add(v.source)
                files.append(volume_unit(v.source, spec, seal))
    secrets: list[SecretRef] = []
    for spec in specs:
        files.append(pod_unit(spec))
        unit, refs = container_unit(spec, by_name, seal)
        files.append(unit)
        secrets += refs
    return files, secrets

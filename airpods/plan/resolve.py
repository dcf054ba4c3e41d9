"""Config → ServiceSpecs (pure, given the GPU probe results and a secret store)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from airpods.errors import ConfigError
from airpods.kinds import kind_of
from airpods.plan import gateway as gateway_plan
from airpods.plan import gpu as gpu_mod
from airpods.plan import health as health_plan
from airpods.plan import hub as hub_plan
from airpods.plan import prometheus as prometheus_plan
from airpods.plan import roles, webui_admin
from airpods.plan import router as router_plan
from airpods.plan.argv import coerce_rendered, flag_name, render_args
from airpods.plan.config_hash import config_hash
from airpods.plan.cpu_plan import CpuShare
from airpods.plan.cpu_shares import cpu_reason, cpu_shares
from airpods.plan.hardening import confine
from airpods.plan.memory import parse_size, run_from_argv
from airpods.plan.project_names import network_of, object_prefix
from airpods.plan.spec import DEFAULT_PROJECT, PortSpec, ServiceSpec, VolumeSpec
from airpods.plan.wiring import backends, rag_env
from airpods.secrets import WEBUI_ADMIN_SECRET, SecretStore, api_key_name, health_key_name, web_password_name

SECRET_ENV = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)
LLAMA_INT_FLAGS = ("port", "ctx_size", "threads", "threads_batch", "parallel", "batch_size",
                   "ubatch_size", "n_predict")


@dataclass(frozen=True)
class Overrides:
    """What the environment and command line say about GPUs."""

    env_variant: str | None = None  # AIRPODS_GPU
    force_cpu_flag: bool = False  # start --cpu


@dataclass
class _Facts:
    name: str
    svc: Any
    pod: str
    container: str
    aliases: list[str]
    ports: list[PortSpec]
    choice: gpu_mod.GpuChoice
    image: str
    api_key: str | None
    health_key: str = ""  # llama.cpp with a key: the host file holding its health probe's own key

    def node(self, sections: Any) -> dict[str, Any]:
        base = (f"http://{self.aliases[0]}:{self.ports[0].container}" if self.ports else None)
        url = f"{base}/v1" if base and kind_of(self.svc.kind).llama_server else base
        return {
            "name": self.name, "kind": self.svc.kind, "enabled": self.svc.enabled,
            "pod": self.pod, "container": self.container, "aliases": self.aliases,
            "network_aliases": self.aliases, "image": self.image, "variant": self.choice.variant,
            "ports": [{"host": p.host, "container": p.container, "host_ip": p.host_ip} for p in self.ports],
            "default_model": self.svc.default_model, "api_key": self.api_key or "",
            "url": url, "env": sections.section(self.name, "env"),
            "command_args": sections.section(self.name, "command_args"),
        }


def _images(svc: Any) -> dict[str, str]:
    if svc.image:
        return {"cpu": svc.image}
    return {k: v for k, v in svc.images.model_dump().items() if v}


def _assign_ports(config: Any) -> dict[str, list[PortSpec]]:
    """Explicit host ports as given; a port of another kind without one is its container port;
    a llama.cpp port without one gets the lowest port from runtime.llamacpp_base_port that no
    service (enabled or not) takes, in config order. Disabled services keep their place, so
    enabling one never moves another's port. Clashes are crosscheck.py's to report."""
    taken = {p.host for s in config.services.values() for p in s.ports if p.host}
    taken |= {p.container for s in config.services.values() if not kind_of(s.kind).llama_server
              for p in s.ports if not p.host}
    out: dict[str, list[PortSpec]] = {}
    next_port = config.runtime.llamacpp_base_port
    for name, svc in config.services.items():
        specs = []
        for port in svc.ports:
            host = port.host
            if host is None and kind_of(svc.kind).llama_server:
                while next_port in taken:
                    next_port += 1
                host = next_port
                taken.add(host)
            elif host is None:
                host = port.container
            host_ip = port.host_ip
            if kind_of(svc.kind).door and svc.listen and "host_ip" not in port.model_fields_set:
                host_ip = svc.listen  # services.gateway.listen: where its HTTPS port is published
            specs.append(PortSpec(host=host, container=port.container, host_ip=host_ip))
        out[name] = specs
    return out


def _choice(name: str, svc: Any, config: Any, results: tuple, ov: Overrides) -> gpu_mod.GpuChoice:
    available = set(_images(svc))
    cpu_only = None
    if ov.force_cpu_flag:
        cpu_only = "--cpu given"
    elif config.gpu.force_cpu:
        cpu_only = "gpu.force_cpu = true"
    elif not svc.gpu.enabled:
        cpu_only = f"services.{name}.gpu.enabled = false"
    elif svc.gpu.force_cpu:
        cpu_only = f"services.{name}.gpu.force_cpu = true"
    forced, by = (ov.env_variant, "AIRPODS_GPU") if ov.env_variant else (config.gpu.variant, "gpu.variant")
    if forced and not cpu_only and forced not in available:
        if forced != "cpu":
            return gpu_mod.GpuChoice("cpu", reason=f"{by}={forced} but no images.{forced}", warnings=(
                f"{by}={forced}, but service '{name}' has no images.{forced}; running on CPU",))
        forced = None
        cpu_only = f"{by}=cpu"
    return gpu_mod.choose(results, available, forced=forced, forced_by=by, cpu_only=cpu_only)


def facts_for(config: Any, results: tuple, ov: Overrides, secrets: SecretStore,
              project: str = DEFAULT_PROJECT) -> dict[str, _Facts]:
    ports = _assign_ports(config)
    prefix = object_prefix(config, project)
    facts = {}
    for name, svc in config.services.items():
        choice = _choice(name, svc, config, results, ov)
        images = _images(svc)
        image = images.get(choice.variant) or images.get("cpu") or next(iter(images.values()))
        api_key, health_key = None, ""
        if kind_of(svc.kind).llama_server:
            raw = "auto" if svc.api_key is None else svc.api_key
            api_key = secrets.get(api_key_name(name)) if raw == "auto" else (raw or None)
            if api_key and svc.health.interval:
                secrets.get(health_key_name(name))  # made once, 0600; only its path goes in the spec
                health_key = str(secrets.path(health_key_name(name)))
        elif svc.api_key:
            api_key = secrets.get(api_key_name(name)) if svc.api_key == "auto" else svc.api_key
        facts[name] = _Facts(name, svc, svc.pod or f"{prefix}{name}", svc.container or f"{prefix}{name}-0",
                             list(svc.network_aliases or [name]), ports[name], choice, image, api_key,
                             health_key)
    return facts


def _user_gpu_setting(name: str, svc: Any) -> str | None:
    """The user's own GPU layout flag for a llama.cpp service, which the GPU plan then checks but
    leaves alone."""
    from airpods.plan.gpu_plan import GPU_FLAGS

    for key in svc.command_args:
        if flag_name(key) in GPU_FLAGS:
            return f"services.{name}.command_args.{key}"
    for i, item in enumerate(svc.args):
        if str(item).split("=", 1)[0] in GPU_FLAGS:
            return f"services.{name}.args[{i}]"
    if "LLAMA_ARG_N_GPU_LAYERS" in svc.env:
        return f"services.{name}.env.LLAMA_ARG_N_GPU_LAYERS"
    return None


def resolve(config: Any, results: tuple, ov: Overrides, secrets: SecretStore,
            cpu: Any = None, router_dir: str = "/nonexistent/airpods-router",
            project: str = "default", gateway_dir: str = "/nonexistent/airpods-gateway",
            prometheus_dir: str = "/nonexistent/airpods-prometheus",
            hub_dir: str = "/nonexistent/airpods-hub") -> dict[str, ServiceSpec]:
    """`cpu` is the CpuTopology probe result; None plans no CPU shares. `router_dir` is where
    router services' preset files live on the host (airpods' data dir). `project` is the scope
    stamped on everything the specs create (runtime.project, or one derived from the config file).
    `gateway_dir` is airpods' folder for this project's gateway (its Caddyfile and key file), `hub_dir`
    the hub's (its HAProxy configuration, the hosts' CAs)."""
    from airpods.config.templating import Renderer, is_template

    project = config.runtime.project or project
    facts = facts_for(config, results, ov, secrets, project)
    shares = cpu_shares(config, cpu)
    raw = {n: {"command_args": f.svc.command_args, "env": f.svc.env, "args": f.svc.args,
               "entrypoint_override": f.svc.entrypoint_override, **router_plan.model_sections(f.svc)}
           for n, f in facts.items()}
    wiring = backends(facts)
    renderer = Renderer(raw, {}, {})
    nodes = {n: f.node(renderer) for n, f in facts.items()}
    renderer.context = {"services": nodes, "runtime": config.runtime.model_dump(),
                        "backends": wiring, "secret": secrets.get}
    renderer.per_service = {
        n: {"service": nodes[n], "default_model": f.svc.default_model or "",
            "gpu": {"variant": f.choice.variant, "accelerated": f.choice.accelerated,
                    "devices": list(f.choice.devices)}}
        for n, f in facts.items()}
    rendered = renderer.render_all()
    problems: list[str] = []
    gateways = {n: gateway_plan.build(n, f.svc, dict(config.services), facts, gateway_dir)
                for n, f in facts.items() if kind_of(f.svc.kind).door}
    monitors = {n: prometheus_plan.build(n, f.svc, facts, project, prometheus_dir, secrets.get(web_password_name(n)))
                for n, f in facts.items() if kind_of(f.svc.kind).scraper}
    hubs = {n: hub_plan.build(n, f.svc, dict(config.hosts), facts, hub_dir, hub_plan.key_reader(secrets, problems))
            for n, f in facts.items() if kind_of(f.svc.kind).model_router and f.svc.enabled}
    if any(facts[n].svc.enabled for n in gateways):  # (absent otherwise: no hash changes without a gateway)
        wiring = {**wiring, "gateway": True}
    exposed = {n for n, f in facts.items()
               if webui_admin.exposed(f.svc.kind, f.svc.enabled, f.ports, bool(wiring.get("gateway")))}
    password = secrets.get(WEBUI_ADMIN_SECRET) if exposed else None
    specs = {}
    for n, f in facts.items():
        spec = _spec(config, f, rendered[n], wiring, problems, is_template, shares.get(n), router_dir,
                     gateways.get(n) or monitors.get(n) or hubs.get(n), password if n in exposed else None)
        own = {**wiring, "hosts": {h: v.url for h, v in config.hosts.items()}} if n in hubs else wiring
        specs[n] = replace(spec, project=project, network=network_of(config, project), config_hash=config_hash(
            config, f, rendered[n], {**own, "headless_admin": True} if n in exposed else own,
            check=spec.health.check if kind_of(f.svc.kind).check_in_config_hash else None,
            confinement=spec.confinement))
    if problems:
        raise ConfigError("the configuration is invalid", problems,
                          hint="fix the keys listed, then run `airpods config validate`")
    return specs


@dataclass
class _Parts:
    """What one service's spec is assembled from, while it is being worked out."""

    args: dict[str, Any]
    env: dict[str, str]
    volumes: list[VolumeSpec]
    secret_env: set[str]
    router: Any = None
    preset: str = ""


def _llamacpp(config: Any, f: _Facts, p: _Parts, rendered: dict, problems: list[str], is_template: Any,
              share: CpuShare | None, router_dir: str) -> None:
    """llama-server's argv checks and defaults, the model volume, the CPU plan's threads, the API
    key (env only) and, in router mode, the router's argv and preset."""
    svc, name, args = f.svc, f.name, p.args
    prefix = f"services.{name}.command_args"
    if "api_key" in args or "api-key" in args or "--api-key" in args:
        problems.append(f"{prefix}.api_key: set services.{name}.api_key instead; a key in argv "
                        "is visible to every process on the host")
    if f.ports:
        args.setdefault("host", "0.0.0.0")
        args.setdefault("port", f.ports[0].container)
        if str(args["port"]) != str(f.ports[0].container):
            problems.append(f"{prefix}.port: {args['port']} differs from "
                            f"services.{name}.ports[0].container ({f.ports[0].container})")
    for key in LLAMA_INT_FLAGS:
        value = args.get(key)
        if value not in (None, False) and not re.fullmatch(r"-?[0-9]+", str(value).strip()):
            problems.append(f"{prefix}.{key}: must be a whole number (got {value!r})")
    if not any(v.target == "/models" for v in p.volumes):
        p.volumes.append(VolumeSpec(config.runtime.models_volume, "/models", "ro"))
    if not any(flag_name(k) in ("--n-gpu-layers", "-ngl", "--gpu-layers") for k in args):
        # Every layer on an accelerator (the GPU plan may lower it), none on the CPU variant.
        args["n_gpu_layers"] = 999 if f.choice.accelerated else 0
    if svc.metrics and "--metrics" not in {flag_name(k) for k in args}:  # the user's own flag wins
        args["metrics"] = True
    _slots(svc, args)
    if svc.mode == "single":  # a router model's role and draft go in its preset section (plan/router.py)
        given = roles.flags_of(args) | roles.flags_of([str(a) for a in svc.args])
        args.update(roles.role_args(svc.role, svc.draft_model, given))
    if share is not None and share.threads:
        args.setdefault("threads", share.threads)
        args.setdefault("threads_batch", share.threads)
    if f.api_key:
        p.env["LLAMA_API_KEY"] = f.api_key
        p.secret_env.add("LLAMA_API_KEY")
    if f.health_key:  # the health probe's own key: a second key, read from a mounted 0600 file
        args["api_key_file"] = health_plan.KEY_PATH
        p.volumes.append(VolumeSpec(f.health_key, health_plan.KEY_PATH, "ro"))
    if svc.mode == "router":
        coerce = lambda v, raw: coerce_rendered(v, is_template(raw))  # noqa: E731
        try:
            p.args, p.router, p.preset = router_plan.build(name, svc, args, rendered, router_dir, coerce)
        except ValueError as exc:
            problems.append(f"services.{name}.models: {exc}")
        else:
            p.volumes.append(VolumeSpec(p.router.preset_host_path, router_plan.PRESET_PATH, "ro"))


SLOT_FLAGS = {"--parallel", "-np"}
KV_LAYOUT_FLAGS = {"--kv-unified", "-kvu", "--no-kv-unified", "-no-kvu"}


def _slots(svc: Any, args: dict) -> None:
    """The slots and KV layout the plan assumes, said to llama-server: `--parallel 1` and a split
    (not unified) cache unless the user says otherwise. Unsaid, this llama-server ran 4 slots
    sharing one unified cache of --ctx-size cells, while the estimate, models fit and /v1/models
    counted one slot of that size (issue 40: two prompts that each fit alone failed together)."""
    given = {flag_name(k) for k in args} | {str(a).split("=", 1)[0] for a in svc.args}
    if not given & SLOT_FLAGS and "LLAMA_ARG_N_PARALLEL" not in svc.env:
        args["parallel"] = 1
    if not given & KV_LAYOUT_FLAGS and "LLAMA_ARG_KV_UNIFIED" not in svc.env:
        args["no_kv_unified"] = True


def _embedding_wiring(p: _Parts, wiring: dict) -> None:
    """Open WebUI's document search (plan/wiring.py); the user's env wins, the keys are secret env."""
    env, secret = rag_env(wiring)
    for key, value in env.items():
        p.env.setdefault(key, value)
    p.secret_env |= secret


def _wire_chat_ui(p: _Parts, wiring: dict, name: str, depends: list[str], admin_password: str | None) -> tuple:
    """A chat UI gets every model server (and depends on them), the embedding model, its login
    behind the gateway and its first admin when others can reach it. Returns what it is wired to."""
    depends += [b for b in wiring["names"] if b not in depends and b != name]
    _embedding_wiring(p, wiring)
    if wiring.get("gateway"):
        p.env["WEBUI_AUTH"] = "true"  # reachable through the gateway: its login stays on
    if admin_password is not None:
        webui_admin.apply(p.env, p.secret_env, admin_password)
    return tuple(wiring["names"])


def _argv(rendered: dict, p: _Parts, parts: Any, monitor: Any) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """(entrypoint, command): the user's, else what the kind's own plan gives (Prometheus' wrapper)."""
    entry = rendered.get("entrypoint_override")
    entrypoint = None if entry is None else ((entry,) if isinstance(entry, str) else tuple(map(str, entry)))
    if monitor is not None and entry is None:
        entrypoint = monitor.entrypoint
    command = tuple(render_args(p.args) + [str(a) for a in rendered.get("args", [])])
    if parts is not None and not command:
        command = parts.command
    return entrypoint, command


def _spec(config: Any, f: _Facts, rendered: dict, wiring: dict, problems: list[str],
          is_template: Any, share: CpuShare | None = None, router_dir: str = "",
          parts: gateway_plan.GatewayParts | prometheus_plan.PrometheusParts | hub_plan.HubParts | None = None,
          admin_password: str | None = None) -> ServiceSpec:
    svc, name = f.svc, f.name
    env = {k: str(v) for k, v in rendered.get("env", {}).items()}
    p = _Parts({k: coerce_rendered(v, is_template(svc.command_args.get(k)))
                for k, v in rendered.get("command_args", {}).items()},
               env, [VolumeSpec(v.source, v.target, v.mode) for v in svc.volumes],
               {k for k in env if SECRET_ENV.search(k)})
    depends = list(svc.depends_on)
    wired: tuple[str, ...] = ()
    if kind_of(svc.kind).llama_server:
        _llamacpp(config, f, p, rendered, problems, is_template, share, router_dir)
    if kind_of(svc.kind).chat_ui:
        wired = _wire_chat_ui(p, wiring, name, depends, admin_password)
    gateway = parts if isinstance(parts, gateway_plan.GatewayParts) else None
    monitor = parts if isinstance(parts, prometheus_plan.PrometheusParts) else None
    if parts is not None:  # the gateway's or Prometheus' own env (keys), mounts and argv
        p.env = {**parts.env, **p.env}
        p.secret_env |= parts.secret_env
        p.volumes += parts.volumes
        depends += [d for d in getattr(parts, "depends_on", ()) if d not in depends]
    entrypoint, command = _argv(rendered, p, parts, monitor)
    timeout = svc.health.timeout
    if "timeout" not in svc.health.model_fields_set and config.runtime.start_timeout:
        timeout = config.runtime.start_timeout
    thread_args = dict(p.router.defaults) if p.router is not None else p.args
    threads = str(thread_args.get("threads", "")).strip() if kind_of(svc.kind).llama_server else ""
    return ServiceSpec(
        name=name, kind=svc.kind, image=f.image, variant=f.choice.variant, pod=f.pod,
        container=f.container, network=config.runtime.network, aliases=tuple(f.aliases),
        ports=tuple(f.ports), volumes=tuple(p.volumes), env=p.env, devices=f.choice.devices,
        security_opt=f.choice.security_opt, entrypoint=entrypoint,
        command=command, llama=run_from_argv(command) if kind_of(svc.kind).llama_server and p.router is None else None,
        # A llama.cpp server answers / (its web UI) before the model is loaded: only /health says ready.
        health=health_plan.health_spec(svc.health, svc.kind, f.ports[0].container if f.ports else None,
                                       p.args.get("port"), router=p.router is not None, keyed=bool(f.health_key),
                                       start_wait=timeout),
        gpu_user=_user_gpu_setting(name, svc) if kind_of(svc.kind).llama_server else None,
        gpu_pins=tuple(str(d) for d in svc.gpu.devices or ()),
        gpu_cap=parse_size(svc.gpu.memory) if svc.gpu.memory else None,
        confinement=confine(svc.kind, svc.hardening or config.runtime.hardening, cap_add=svc.cap_add, tmpfs=svc.tmpfs,
                            argv=command, volume_targets=[v.target for v in p.volumes], devices=bool(f.choice.devices)),
        memory=svc.resources.memory, cpus=svc.resources.cpus,
        cpuset=svc.resources.cpuset or (share.cpuset if share else None),
        threads=int(threads) if threads.isdigit() else None, cpu_reason=cpu_reason(config, svc, share),
        memory_check=svc.memory_check, router=p.router, router_preset=p.preset,
        restart_policy=config.runtime.restart_policy, stop_timeout=config.runtime.stop_timeout,
        depends_on=tuple(depends), default_model=svc.default_model,
        secret_env=frozenset(p.secret_env), wired_to=wired,
        extra_labels=tuple(sorted(config.runtime.labels.items())), enabled=svc.enabled,
        gpu_reason=f.choice.reason, gpu_warnings=f.choice.warnings,
        scheme="https" if gateway is not None else "http",
        gateway_config=gateway.caddyfile if gateway else "",
        gateway_dir=gateway.directory if gateway else "",
        gateway_routes=gateway.routes if gateway else (),
        gateway_names=gateway.names if gateway else (),
        config_files=((monitor.config_path, monitor.config), (monitor.web_path, monitor.web)) if monitor else
        getattr(parts, "config_files", ()),
        http_auth=monitor.http_auth if monitor else "",
        hub_members=tuple((m.id, m.title, m.relay) for m in getattr(parts, "members", ())),
    )

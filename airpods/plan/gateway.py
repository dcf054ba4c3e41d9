"""The gateway (kind = "gateway"): one HTTPS door, Caddy, in front of the llama.cpp services and
Open WebUI. Pure: from the resolved facts of the other services it renders the Caddyfile (routes,
TLS, the access log), the backend keys the gateway sends (as environment variables the Caddyfile
refers to, never in its text), its mounts and its argv.

The person keys are not here: they live in a 0600 file the Caddyfile imports (gateway/keys.py
writes it), mapped to their owner's name, which Caddy's access log then shows as `user_id`."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from airpods.config.values import is_ip
from airpods.kinds import kind_of
from airpods.kinds.hub import PORT as HUB_PORT
from airpods.plan.spec import VolumeSpec

ETC = "/etc/airpods-gateway"  # the Caddyfile and keys.caddy (a read-only bind mount of airpods' folder)
TLS_DIR = "/etc/airpods-gateway-tls"  # the user's own certificate and key, when given
DATA = "/data"  # Caddy's storage (XDG_DATA_HOME): its local CA and certificates, in a named volume
KEYS_FILE = "keys.caddy"
CADDYFILE = "Caddyfile"
CA_PATH = "caddy/pki/authorities/local/root.crt"  # in DATA: the local CA's root certificate
HEALTH_PATH = "/healthz"
METRICS_PORT = 9180  # Caddy's metrics listener, inside the airpods network only
COMMAND = ("caddy", "run", "--config", f"{ETC}/{CADDYFILE}", "--adapter", "caddyfile", "--watch")
UNAUTHORIZED = json.dumps({"error": {"message": "missing, unknown or revoked API key: ask the gateway's "
                                                "owner for one (airpods keys add NAME)",
                                     "type": "authentication_error", "code": 401}})
NOT_HERE = json.dumps({"error": {"message": "not served through the gateway: /metrics and /slots are for the host "
                                            "and the monitoring service", "type": "not_found_error", "code": 404}})


@dataclass(frozen=True)
class Backend:
    """A llama.cpp service the gateway routes to."""

    service: str
    address: str  # alias:port on the airpods network
    key_env: str | None  # the env var holding its backend key; None: it has no key


@dataclass(frozen=True)
class GatewayParts:
    caddyfile: str
    env: dict[str, str]
    secret_env: frozenset[str]
    volumes: tuple[VolumeSpec, ...]
    command: tuple[str, ...]
    depends_on: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]  # (path prefix, service)
    names: tuple[str, ...]  # what its certificate covers
    directory: str  # airpods' folder for it (keys.json; etc/ is mounted at ETC)


def key_env(service: str) -> str:
    """The variable holding a service's key (config validation refuses two names that give one)."""
    from airpods.config.crosscheck import env_name

    return "AIRPODS_BACKEND_KEY_" + env_name(service)


def default_backend(gateway: Any, services: dict[str, Any]) -> str | None:
    """The llama.cpp service behind /v1: `default`, else the first enabled router, else `llamacpp`."""
    if gateway.default:
        return gateway.default if services.get(gateway.default) is not None and \
            services[gateway.default].enabled else None
    routers = [n for n, s in services.items() if kind_of(s.kind).llama_server and s.enabled and s.mode == "router"]
    if routers:
        return routers[0]
    llama = services.get("llamacpp")
    return "llamacpp" if llama is not None and kind_of(llama.kind).llama_server and llama.enabled else None


def loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def site_names(listen: str, hostnames: list[str]) -> list[str]:
    """What the certificate covers: localhost and 127.0.0.1 always, the listen address when it is one
    address, and services.NAME.hostnames."""
    names = ["localhost", "127.0.0.1"]
    if not ipaddress.ip_address(listen).is_unspecified and listen not in names:
        names.append(listen)
    return list(dict.fromkeys([*names, *hostnames]))


def default_sni(names: list[str]) -> str:
    """The certificate for a client that sends no server name, as every client that connects to an
    IP address does: the listen address or the first IP among the hostnames, else 127.0.0.1 (inside
    the container Caddy cannot tell which address the client dialled)."""
    ips = [n for n in names[2:] if is_ip(n)]
    return ips[0] if ips else "127.0.0.1"


def _site(name: str, port: int) -> str:
    host = f"[{name}]" if ":" in name else name
    return f"https://{host}:{port}"


def _proxy(backend: Backend, indent: str) -> list[str]:
    auth = (f'header_up Authorization "Bearer {{env.{backend.key_env}}}"' if backend.key_env
            else "header_up -Authorization")  # a person's key never reaches a backend
    return [f'{indent}header @anonymous WWW-Authenticate "Bearer"',
            f"{indent}header @anonymous Content-Type application/json",
            f"{indent}respond @anonymous `{UNAUTHORIZED}` 401",
            f"{indent}reverse_proxy {backend.address} {{",
            f"{indent}\t{auth}",
            f"{indent}\tflush_interval -1",  # streamed tokens pass through at once
            f"{indent}}}"]


def internal_paths(services: list[str]) -> list[str]:
    """llama-server's /metrics and /slots under every prefix the gateway serves: they tell prompts'
    sizes and what each slot holds, so they are for the host and the monitoring service only."""
    prefixes = ["", "/v1", *(p for s in services for p in (f"/{s}", f"/{s}/v1"))]
    return [f"{prefix}/{what}*" for prefix in prefixes for what in ("metrics", "slots")]


def caddyfile(*, names: list[str], port: int, own_tls: bool, backends: list[Backend], default: str | None,
              webui: str | None, front: Backend | None = None) -> str:
    """`front`: what /v1 goes to instead of the default service (the hub, routing by model)."""
    lines = ["# Written by airpods from the gateway's service table; `airpods start` rewrites it.",
             "# Person keys are in keys.caddy (airpods keys add/list/revoke), never here.",
             "{", "\tadmin off", "\tauto_https disable_redirects", "\tskip_install_trust",
             f"\tdefault_sni {default_sni(names)}", "\tservers {", "\t\tprotocols h1 h2", "\t}", "}", "",
             ", ".join(_site(n, port) for n in names) + " {",
             f"\ttls {TLS_DIR}/cert.pem {TLS_DIR}/key.pem" if own_tls else "\ttls internal",
             "\tlog {", "\t\toutput stdout", "\t\tformat json", "\t}",
             f"\timport {ETC}/{KEYS_FILE}",  # sets {http.auth.user.id} to the key's owner, or ""
             '\t@anonymous vars {http.auth.user.id} ""',
             f"\thandle {HEALTH_PATH} {{", '\t\trespond "ok" 200', "\t}"]
    by_name = {b.service: b for b in backends}
    for path in internal_paths([b.service for b in backends]):  # a person's key never sees slot state
        lines += [f"\thandle {path} {{", "\t\theader Content-Type application/json",
                  f"\t\trespond `{NOT_HERE}` 404", "\t}"]
    for b in backends:
        lines += [f"\thandle /{b.service}/v1/* {{", f"\t\turi strip_prefix /{b.service}", *_proxy(b, "\t\t"), "\t}"]
    front = front or (by_name[default] if default is not None and default in by_name else None)
    if front is not None:
        lines += ["\thandle /v1/* {", *_proxy(front, "\t\t"), "\t}"]
    lines += ["\thandle {"]
    if webui:
        lines += [f"\t\treverse_proxy {webui}"]  # Open WebUI keeps its own login
    else:
        routes = ", ".join([*(["/v1"] if front else []), *(f"/{b.service}/v1" for b in backends)])
        routes = routes or "none"
        lines += [f'\t\trespond "airpods gateway: OpenAI-compatible routes: {routes}" 404']
    lines += ["\t}", "}", "",
              "# Caddy's own metrics for a Prometheus on the airpods network (this port is never published).",
              f"http://:{METRICS_PORT} {{", "\tmetrics /metrics", "}"]
    return "\n".join(lines) + "\n"


def build(name: str, svc: Any, services: dict[str, Any], facts: dict[str, Any], store_dir: str) -> GatewayParts:
    """`facts` are resolve's per-service facts (aliases, container ports, API keys); `store_dir` is
    airpods' folder for this project's gateway (its `etc/` is mounted at ETC)."""
    enabled = {n: f for n, f in facts.items() if f.svc.enabled and f.ports and n != name}
    backends = [Backend(n, f"{f.aliases[0]}:{f.ports[0].container}", key_env(n) if f.api_key else None)
                for n, f in enabled.items() if kind_of(f.svc.kind).llama_server]
    webui = next((f"{f.aliases[0]}:{f.ports[0].container}" for f in enabled.values() if kind_of(f.svc.kind).chat_ui),
                 None)
    webui_service = next((n for n, f in enabled.items() if kind_of(f.svc.kind).chat_ui), None)
    default = default_backend(svc, services)
    hub = next((n for n, f in facts.items() if f.svc.enabled and kind_of(f.svc.kind).model_router), None)
    # /v1 goes by each request's model through the hub, when there is one (a person's key stays here)
    front = Backend(hub, f"{facts[hub].aliases[0]}:{HUB_PORT}", None) if hub else None
    port = facts[name].ports[0]
    listen = port.host_ip
    names = site_names(listen, list(svc.hostnames))
    text = caddyfile(names=names, port=port.container,
                     own_tls=svc.tls_cert is not None, backends=backends, default=default, webui=webui, front=front)
    env = {"XDG_DATA_HOME": DATA, "XDG_CONFIG_HOME": "/config"}
    env.update({b.key_env: facts[b.service].api_key for b in backends if b.key_env})
    volumes = [VolumeSpec(f"{store_dir}/etc", ETC, "ro")]
    if svc.tls_cert:
        volumes += [VolumeSpec(svc.tls_cert, f"{TLS_DIR}/cert.pem", "ro"),
                    VolumeSpec(svc.tls_key, f"{TLS_DIR}/key.pem", "ro")]
    if front is not None:
        default = hub
    routes = [*((("/v1", default),) if front or default in {b.service for b in backends} else ()),
              *((f"/{b.service}/v1", b.service) for b in backends),
              *((("/", webui_service),) if webui_service else ())]
    return GatewayParts(text, env, frozenset(b.key_env for b in backends if b.key_env), tuple(volumes), COMMAND,
                        tuple([b.service for b in backends] + ([hub] if hub else []) +
                              ([webui_service] if webui_service else [])),
                        tuple((p, s) for p, s in routes if s), tuple(names), store_dir)

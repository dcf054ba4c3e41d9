"""The hub (kind = "hub"): HAProxy behind the gateway, routing each /v1 request by the `model` it
names to the members that serve it: this host's llama.cpp services and the other hosts of
[hosts]. Pure: from the resolved facts it renders HAProxy's static configuration (the members,
their health checks, the TLS trust of each host), its env (the keys, secret) and its mounts.

What each member serves is not known here: `airpods start` and `airpods hosts refresh` ask
them (hosts/refresh.py) and write routes.cfg, models.map and models.json next to it (hosts/routes.py),
then tell HAProxy to read them again. docs/plans/hosts.md says why HAProxy."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from airpods.config.values import is_ip
from airpods.kinds import kind_of
from airpods.kinds.hub import PORT
from airpods.plan.spec import VolumeSpec

ETC = "/etc/airpods-hub"  # a read-only bind mount of airpods' folder for the hub
STATIC = "hub.cfg"
ROUTES = "routes.cfg"
MAP = "models.map"
LISTING = "models.json"
HOSTS_DIR = "hosts"  # the CA of each host, NAME.pem, written by `airpods hosts add`
RELAY_BASE = 19000  # the relays listen on 127.0.0.1:RELAY_BASE+i inside the hub's own pod
BODY_LIMIT = 1 << 20  # bytes of a request body HAProxy reads to find its model (tune.bufsize)
CHECK_EVERY = 1  # seconds between health checks of a member
CHECK_FALLS = 2  # failed checks in a row that take a member out
CHECK_TIMEOUT = 2  # seconds one check may take
TAKEN_OUT_WITHIN = CHECK_FALLS * CHECK_EVERY + CHECK_TIMEOUT  # the stated bound (docs/hosts.md)
# One line per request the hub routed, on its stderr (Podman's log): `airpods top` counts each
# member's requests from them (monitor/hub_log.py reads this format). Fields: when it began
# (epoch s.ms), its total ms, backend, server (the member), status, bytes answered, how it ended.
LOG_TAG = "airpods-hub"
LOG_FORMAT = f"{LOG_TAG} %Ts.%ms %Tt %b %s %ST %B %ts"
COMMAND = ("haproxy", "-W", "-db", "-f", f"{ETC}/{STATIC}", "-f", f"{ETC}/{ROUTES}")
EMPTY_LISTING = json.dumps({"object": "list", "data": []})


# Names asked again at run time, of Podman's DNS (which answers a service's short name). A cluster's
# DNS answers short names only through resolv.conf's search list, which HAProxy's resolvers do not
# use; its Services' addresses stay put, so there the names are resolved once, at start (libc).
RESOLVE = " resolvers podman resolve-prefer ipv4 init-addr last,libc,none"
KUBE_RESOLVE = " init-addr libc,none"


def for_kubernetes(text: str) -> str:
    """The hub's configuration (the spec's hub.cfg) as a cluster runs it: see RESOLVE."""
    return text.replace(RESOLVE, KUBE_RESOLVE)


@dataclass(frozen=True)
class Member:
    """Something the hub routes to: a local llama.cpp service or another host's gateway."""

    id: str  # HAProxy's name for it: "local-NAME" or "host-NAME"
    title: str  # how errors and `hosts list` name it: "llamacpp (this host)" or "host gpu-box"
    address: str  # host:port
    key_env: str | None  # the env var holding the key it is sent; None: no key
    tls_name: str | None = None  # a remote host: the name its certificate is checked against (None: an IP)
    ca: str = ""  # a remote host: the CA file in the container
    check_path: str = "/health"
    relay: int = 0  # the relay's port

    @property
    def remote(self) -> bool:
        return bool(self.ca)


@dataclass(frozen=True)
class HubParts:
    env: dict[str, str]
    secret_env: frozenset[str]
    volumes: tuple[VolumeSpec, ...]
    command: tuple[str, ...]
    depends_on: tuple[str, ...]
    config_files: tuple[tuple[str, str], ...]
    members: tuple[Member, ...]


def host_key_env(host: str) -> str:
    from airpods.config.crosscheck import env_name

    return "AIRPODS_HOST_KEY_" + env_name(host)


def host_key_secret(host: str) -> str:
    """The secret (0600, airpods' secrets folder) holding the key `host` gave this one."""
    return f"host-{host}-key"


def members(hosts: dict[str, Any], facts: dict[str, Any], hub: str) -> list[Member]:
    """This host's enabled llama.cpp services, then the hosts, in config order, each with its relay port."""
    from airpods.plan.gateway import key_env

    out: list[Member] = []
    for n, f in facts.items():
        if n != hub and f.svc.enabled and f.ports and kind_of(f.svc.kind).llama_server:
            out.append(Member(f"local-{n}", f"{n} (this host)", f"{f.aliases[0]}:{f.ports[0].container}",
                              key_env(n) if f.api_key else None))
    for name, host in hosts.items():
        parts = urlsplit(host.url)
        address = f"{parts.hostname}:{parts.port or 443}" if ":" not in parts.hostname else \
            f"[{parts.hostname}]:{parts.port or 443}"
        out.append(Member(f"host-{name}", f"host {name}", address, host_key_env(name),
                          None if is_ip(parts.hostname) else parts.hostname, f"{ETC}/{HOSTS_DIR}/{name}.pem",
                          "/v1/models"))
    return [replace(m, relay=RELAY_BASE + i) for i, m in enumerate(out)]


def key_reader(secrets: Any, problems: list[str]) -> Any:
    """build's `host_key`: the key each host gave this one, from the secret store (never made up);
    a host without one is a problem to fix, named with its fix."""
    def read(host: str) -> str:
        value = secrets.read(host_key_secret(host))
        if value is None:
            problems.append(f"hosts.{host}: no key for it is stored on this machine: airpods hosts add {host} URL "
                            "--ca FILE (the key is the one `airpods keys add` printed on that host)")
            return ""
        return value
    return read


def _member_sections(m: Member, host_header: str) -> list[str]:
    key = f'"Bearer ${{{m.key_env}}}"' if m.key_env else None
    check = f"http-check send meth GET uri {m.check_path} ver HTTP/1.1 hdr Host {host_header}"
    lines = ["", f"# {m.title}", f"frontend relay-{m.id}", f"\tbind 127.0.0.1:{m.relay}",
             "\tno log",  # the hub's own frontend logs each request once
             f"\tdefault_backend {m.id}", "", f"backend {m.id}", "\toption httpchk",
             (f"\t{check} hdr Authorization {key}" if key and m.remote else f"\t{check}"),
             "\thttp-check expect status 200", f"\thttp-request set-header Host {host_header}"]
    lines.append(f"\thttp-request set-header Authorization {key}" if key else "\thttp-request del-header Authorization")
    server = f"\tserver {m.id} {m.address} check inter {CHECK_EVERY}s fall {CHECK_FALLS} rise 1" + RESOLVE
    if m.remote:
        server += f" ssl verify required ca-file {m.ca}"
        if m.tls_name:
            server += f" sni str({m.tls_name}) verifyhost {m.tls_name}"
        server += " alpn http/1.1"
    return lines + [server]


HUB_ERRORS = ((502, "the host or service serving this model gave the hub no valid answer"),
              (503, "no live host or service could take this request now (`airpods hosts list` says why)"),
              (504, "the host or service serving this model did not answer in time"))


def _error(code: int, text: str) -> str:
    kind = "service_unavailable" if code == 503 else "bad_gateway"
    return json.dumps({"error": {"message": f"{text} (HTTP {code} from the airpods hub)", "type": kind,
                                 "code": code}})


def unknown_model() -> str:
    message = ("model %[var(txn.model),json(utf8s)] is served by no service of this hub nor any of its hosts: "
               "GET /v1/models lists what is; `airpods hosts refresh` reads the hosts' lists again")
    return json.dumps({"error": {"message": message, "type": "not_found_error", "code": 404}})


def config_text(ms: list[Member]) -> str:
    body_error = json.dumps({"error": {"message": f"the hub reads at most {BODY_LIMIT} bytes of a request to find "
                                                  "its model; send larger ones to /SERVICE/v1 of the gateway",
                                       "type": "invalid_request_error", "code": 413}})
    no_model = json.dumps({"error": {"message": "the request names no model: the hub routes each request by the "
                                                "model it names (GET /v1/models lists them)",
                                     "type": "invalid_request_error", "code": 400}})
    lines = ["# Written by airpods from the hub's service table and [hosts]; `airpods start` rewrites it.",
             "# Keys come from the environment (Podman secrets), never from this text. What each member",
             f"# serves is in {ROUTES} and {MAP}, which `airpods hosts refresh` rewrites.",
             "global", f"\ttune.bufsize {BODY_LIMIT}", "\tlog stderr format raw daemon info", "",
             "# Names again every few seconds (a recreated service has a new address): Podman's DNS.",
             "resolvers podman", "\tparse-resolv-conf", "\thold valid 5s", "\thold nx 2s", "\thold other 2s",
             "\ttimeout resolve 1s", "\ttimeout retry 1s", "",
             "defaults", "\tmode http", "\tlog global", "\toption dontlognull", f'\tlog-format "{LOG_FORMAT}"',
             f"\ttimeout connect {CHECK_TIMEOUT}s", f"\ttimeout check {CHECK_TIMEOUT}s",
             "\ttimeout client 10m", "\ttimeout server 10m", "\ttimeout http-request 30s", "\ttimeout queue 30s",
             # A host gone without a word (a cable, a power cut) ends a stream within about 25 s, not 10 min.
             "\toption srvtcpka", "\tsrvtcpka-idle 10s", "\tsrvtcpka-intvl 5s", "\tsrvtcpka-cnt 3",
             "\toption http-buffer-request", "\tretries 2", "\toption redispatch 1",
             # Idle connections to the members are shared by every request (all of them go to our own
             # services and hosts): a TLS handshake per request would double the first token's wait.
             "\thttp-reuse always", "\toption http-no-delay",  # tokens pass at once, never held to fill a packet
             "\tretry-on conn-failure empty-response 503",
             *(f"\thttp-error status {code} content-type application/json string {quoted(_error(code, text))}"
               for code, text in HUB_ERRORS), "",
             "frontend hub", f"\tbind :{PORT}",
             "\thttp-request set-log-level silent if { path /healthz }",
             '\thttp-request return status 200 content-type text/plain string ok if { path /healthz }',
             f"\thttp-request return status 200 content-type application/json file {ETC}/{LISTING} "
             "if METH_GET { path /v1/models }",
             "\thttp-request set-var(txn.model) req.body,json_query('$.model') if METH_POST",
             "\thttp-request set-var(txn.read) req.body_len if METH_POST",
             f"\thttp-request return status 413 content-type application/json string {quoted(body_error)} "
             "if METH_POST { req.body_size,sub(txn.read) gt 0 }",
             f"\thttp-request return status 400 content-type application/json string {quoted(no_model)} "
             "if METH_POST !{ var(txn.model) -m found }",
             f"\tuse_backend %[var(txn.model),map({ETC}/{MAP},unknown)] if {{ var(txn.model) -m found }}",
             "\tdefault_backend unknown", "",
             "backend unknown",
             f"\thttp-request return status 404 content-type application/json lf-string {quoted(unknown_model())}"]
    for m in ms:
        lines += _member_sections(m, m.address if m.remote else "localhost")
    return "\n".join(lines) + "\n"


def quoted(text: str) -> str:
    """A double-quoted HAProxy word: its quotes and backslashes escaped, `$` and `%` left to the
    caller (lf-string reads %[...]; a JSON error of ours holds no `$`)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build(name: str, svc: Any, hosts: dict[str, Any], facts: dict[str, Any], store_dir: str,
          host_key: Any) -> HubParts:
    """`facts` are resolve's per-service facts; `store_dir` is airpods' folder for this project's
    hub (its etc/ is mounted at ETC); `host_key(host)` reads the key a host gave this one."""
    ms = members(hosts, facts, name)
    text = config_text(ms)
    env: dict[str, str] = {}
    for m in ms:
        if m.key_env is None:
            continue
        if m.remote:
            env[m.key_env] = host_key(m.id.removeprefix("host-"))
        else:
            env[m.key_env] = facts[m.id.removeprefix("local-")].api_key
    etc = f"{store_dir}/etc"
    files = ((f"{etc}/{STATIC}", text),)  # the routes beside it are data: stack/hub.py writes them
    local = tuple(m.id.removeprefix("local-") for m in ms if not m.remote)
    return HubParts(env, frozenset(env), (VolumeSpec(etc, ETC, "ro"),), COMMAND, local, files, tuple(ms))

"""Checks made before anything is created: busy host ports, missing models."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import UsageError
from airpods.kinds import kind_of
from airpods.plan.spec import ServiceSpec

if TYPE_CHECKING:
    from airpods.runtime.port import ContainerRuntime


def port_free(host_ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        return True
    except OSError as exc:
        return exc.errno not in (errno.EADDRINUSE, errno.EACCES)
    finally:
        sock.close()


def unprivileged_port_start(path: Path = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 1024


def check_ports(specs: list[ServiceSpec], *, rootless: bool = False) -> None:
    if rootless:
        first_free = unprivileged_port_start()
        low = [(s, p) for s in specs for p in s.ports if p.host < first_free]
        if low:
            s, p = low[0]
            raise UsageError(
                f"service '{s.name}': host port {p.host} is below {first_free}, which rootless Podman may not "
                "bind; nothing was created",
                details=[f"services.{x.name}.ports: host port {q.host} < net.ipv4.ip_unprivileged_port_start "
                         f"({first_free})" for x, q in low],
                hint=f"publish it on a port >= {first_free}: [services.{s.name}] ports = [{{ host = "
                     f"{p.host + 8000 if p.host + 8000 >= first_free else first_free}, container = "
                     f"{p.container} }}], or as root: sysctl net.ipv4.ip_unprivileged_port_start={p.host}")
    busy = [(s, p) for s in specs for p in s.ports if not port_free(p.host_ip, p.host)]
    if busy:
        lines = [f"services.{s.name}: host port {p.host_ip}:{p.host} is already in use" for s, p in busy]
        first = busy[0]
        raise UsageError(
            f"port {first[1].host} for service '{first[0].name}' is busy; nothing was created",
            hint=f"stop what holds it (ss -ltnp 'sport = :{first[1].host}'), or publish the service "
                 f"on another port: [services.{first[0].name}] ports = [{{ host = <free port>, "
                 f"container = {first[1].container} }}]",
            details=lines)


def model_in_volume(spec: ServiceSpec) -> str | None:
    """The file (relative to the model volume) that --model points at, if it is in /models."""
    return spec.run.model_in_volume


def wanted_models(spec: ServiceSpec) -> list[str]:
    """The files a llama.cpp service needs in its model volume (a router: every model's file)."""
    if not kind_of(spec.kind).llama_server:
        return []
    if spec.router is not None:
        return list(dict.fromkeys(f for m in spec.router.models for f in (m.file, m.draft) if f))
    return [f for f in (model_in_volume(spec), spec.run.draft_in_volume) if f]


def check_models(specs: list[ServiceSpec], runtime: ContainerRuntime, models_volume: str) -> list[str]:
    """Exit 2 when a llama.cpp service's model is not in the volume. Returns warnings."""
    warnings = []
    for spec, wanted in [(s, w) for s in specs for w in wanted_models(s)]:
        volume = next((v.source for v in spec.volumes if v.target == "/models"), models_volume)
        exists = runtime.volume_exists(volume)
        path = runtime.volume_path(volume) if exists else None
        if exists and path is None:
            warnings.append(f"cannot look inside volume {volume} (not local); not checking {wanted}")
            continue
        if path is not None and (Path(path) / wanted).is_file():
            from airpods.models.split_names import split_parts

            missing = [p for p in split_parts(wanted) if not (Path(path) / p).is_file()]
            if not missing:
                continue
            raise UsageError(f"service '{spec.name}': model {wanted} is split and {len(missing)} of its parts are "
                             f"missing from {volume}; nothing was created", details=missing,
                             hint="pull it again (a pull resumes), or import the missing parts")
        have = sorted(p.name for p in Path(path).glob("*.gguf")) if path else []
        listing = ", ".join(have) if have else "none"
        raise UsageError(
            f"service '{spec.name}': model {wanted} is not in the model volume {volume}; nothing was created",
            details=[f"models in {volume}: {listing}"],
            hint=(f"import it: airpods models import /path/to/{wanted}   or download it: "
                  f"airpods models pull <org>/<repo>:<QUANT>   or set services.{spec.name}."
                  + ("models.<id>.file" if spec.router else "default_model")
                  + (f" to one of: {listing}" if have else "")))
    return warnings


POOLING_TYPES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}  # llama.cpp's enum in GGUF headers


def check_pooling(specs: list[ServiceSpec], runtime: ContainerRuntime, models_volume: str) -> None:
    """An embeddings model gets pooling = "mean" unless the user chose one (llama-server's "none"
    is not OpenAI-compatible). A model whose header declares another pooling would be served
    wrongly that way: exit 2 and ask for an explicit choice."""
    from airpods.models.gguf import GGUFError
    from airpods.models.gguf_header import read_header

    for spec in specs:
        if spec.router is None:
            continue
        volume = next((v.source for v in spec.volumes if v.target == "/models"), models_volume)
        path = runtime.volume_path(volume) if runtime.volume_exists(volume) else None
        for m in spec.router.models:
            if not m.embeddings or m.pooling_set or path is None:
                continue
            try:
                kv = read_header(Path(path) / m.file).kv
            except (OSError, GGUFError):
                continue
            arch = kv.get("general.architecture")
            declared = POOLING_TYPES.get(kv.get(f"{arch}.pooling_type"))  # type: ignore[arg-type]
            if declared not in (None, "none", "mean"):
                raise UsageError(
                    f"service '{spec.name}': embedding model {m.id} ({m.file}) declares pooling '{declared}', "
                    "but airpods would serve it with 'mean'; nothing was created",
                    hint=f"say which: [services.{spec.name}.models.{m.id}] pooling = \"{declared}\"")


def check_drafts(specs: list[ServiceSpec], runtime: ContainerRuntime, models_volume: str) -> None:
    """A draft model must share its target's vocabulary (llama.cpp compares them at load time and
    fails the start): exit 2 naming both, before anything is created."""
    from airpods.models.gguf import GGUFError
    from airpods.models.gguf_header import read_vocab
    from airpods.models.store import inside
    from airpods.plan.draft_vocab import vocab_problem

    for spec in specs:
        pairs = ([(f"models.{m.id}", m.file, m.draft) for m in spec.router.models if m.draft] if spec.router
                 else [("", spec.run.model_in_volume, spec.run.draft_in_volume)] if spec.run.draft else [])
        volume = next((v.source for v in spec.volumes if v.target == "/models"), models_volume)
        path = runtime.volume_path(volume) if runtime.volume_exists(volume) else None
        for where, target, draft in pairs:
            if path is None or target is None or draft is None:
                continue
            try:  # inside(): a name that leads out of the volume is refused, never read
                problem = vocab_problem(read_vocab(inside(Path(path), target)), read_vocab(inside(Path(path), draft)))
            except (OSError, GGUFError):
                continue  # a missing file is check_models' to report
            if problem:
                key = f"services.{spec.name}.{where + '.' if where else ''}draft_model"
                raise UsageError(
                    f"service '{spec.name}': draft model {draft} cannot draft for {target}: {problem}; "
                    "nothing was created",
                    hint=f"pick a draft from the same model family as {target} (the same tokenizer), "
                         f"or remove {key}")


def check_gateway(specs: list[ServiceSpec]) -> list[str]:
    """A gateway published beyond this machine needs at least one key (else exit 2, nothing created),
    and the user's own certificate files must be there. Returns the warnings to show."""
    gateways = [s for s in specs if kind_of(s.kind).door]
    if not gateways:
        return []
    from airpods.gateway.keys import KeyStore
    from airpods.plan.gateway import TLS_DIR, loopback

    warnings = []
    for spec in gateways:
        for v in spec.volumes:
            if v.target.startswith(TLS_DIR + "/") and not Path(v.source).is_file():
                key = "tls_cert" if v.target.endswith("cert.pem") else "tls_key"
                raise UsageError(f"service '{spec.name}': {key} {v.source} is not a file; nothing was created",
                                 hint=f"point services.{spec.name}.{key} at your PEM file, or remove tls_cert and "
                                      "tls_key to use the gateway's own local CA")
        wide = [p for p in spec.ports if not loopback(p.host_ip)]
        if not wide:
            continue
        if KeyStore.of(spec).count() == 0:
            raise UsageError(
                f"service '{spec.name}' would listen on {wide[0].host_ip}:{wide[0].host} with no key defined; "
                "nothing was created",
                hint="add a key for each person first: airpods keys add NAME   (or keep it on this machine: "
                     f"remove services.{spec.name}.listen)")
        warnings.append(f"the gateway listens on {wide[0].host_ip}:{wide[0].host}: reachable from other machines "
                        f"(services.{spec.name}.listen); only requests with a key get through")
    return warnings

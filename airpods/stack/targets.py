"""What a command acts on, found in the stack: the llama.cpp service a models command or a chat
uses, its model volume's store, its endpoint (only once Podman says the port is its own), the
gateway and its CA, and a model's place in a router."""

from __future__ import annotations

from typing import Any

from airpods.errors import UsageError
from airpods.kinds import kind_of


def llama_spec(stack: Any, specs: dict, service: str | None):
    """The llama.cpp service whose settings (volume, ctx, slots) a models command uses: the one
    named, else `llamacpp`, else the first llama.cpp service; None when there is none."""
    if service:
        stack.select(specs, (service,))
        if not kind_of(specs[service].kind).llama_server:
            raise UsageError(f"service '{service}' is a {specs[service].kind} service, not llama.cpp")
        return specs[service]
    llama = [s for s in specs.values() if kind_of(s.kind).llama_server]
    return next((s for s in llama if s.name == "llamacpp"), llama[0] if llama else None)


def store_of(stack: Any, service: str | None):
    from airpods.models.store import ModelStore

    specs = stack.specs(create_secrets=False)
    volume = stack.runtime_settings["models_volume"]
    if service:
        spec = llama_spec(stack, specs, service)
        volume = next((v.source for v in spec.volumes if v.target == "/models"), volume)
    labels = {**stack.runtime_settings["labels"], "io.airpods.managed": "true",
              "io.airpods.project": stack.project}
    return ModelStore(stack.runtime, volume, labels)


def probe_spec(spec, model: str, *, ctx: int | None = None, parallel: int | None = None):
    """`spec` as it would run `model` (a file in its volume): a router's child gets the router's
    defaults and the model's own section; ctx and parallel replace the service's when given."""
    import dataclasses

    from airpods.plan.memory import run_from_argv
    from airpods.plan.router import model_argv

    argv = model_argv(spec.router, model) if spec.router is not None else list(spec.command)
    for flags, value in ((("--ctx-size", "-c"), ctx), (("--parallel", "-np"), parallel)):
        if value is not None:
            argv = _set_flag(argv, flags, str(value))
    argv = _set_flag(argv, ("--model", "-m"), f"/models/{model}")
    return dataclasses.replace(spec, command=tuple(argv), router=None, llama=run_from_argv(argv))


def _set_flag(argv: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    for i, item in enumerate(argv[:-1]):
        if item in flags:
            return [*argv[:i + 1], value, *argv[i + 2:]]
    return [*argv, flags[0], value]


def preset_on_disk(spec) -> dict[str, str]:
    """The models of the preset the running router was given (airpods' own file): id -> file."""
    from pathlib import Path

    from airpods.plan.router import preset_models

    try:
        return preset_models(Path(spec.router.preset_host_path).read_text(encoding="utf-8"))
    except OSError:
        return {}


def default_llama(stack: Any, specs: dict, service: str | None):
    """The llama.cpp service a chat or a run goes to: the one named, else the enabled router, else
    `llamacpp` (or the first llama.cpp service)."""
    from airpods.stack.targets import llama_spec

    if service is None:
        router = next((s for s in specs.values()
                       if kind_of(s.kind).llama_server and s.router is not None and s.enabled), None)
        if router is not None:
            return router
    spec = llama_spec(stack, specs, service)
    if spec is None:
        raise UsageError("this config has no llama.cpp service",
                         hint="add one: [services.llamacpp] (see airpods config show), or --config another file")
    return spec


def endpoint_of(stack: Any, spec):
    """The service's /v1 with its key, once Podman says its running container publishes that port
    (the key and the conversation go nowhere else)."""
    from airpods.chat.client import Endpoint
    from airpods.orchestrate.running import serving_base

    if not spec.url:
        raise UsageError(f"service '{spec.name}' publishes no port on this machine",
                         hint=f"add ports to [services.{spec.name}], or chat through the gateway: "
                              "airpods chat --gateway")
    return Endpoint(serving_base(stack.runtime, spec).rstrip("/") + "/v1", spec.env.get("LLAMA_API_KEY"))


def gateway_endpoint(stack: Any, service: str | None):
    """(the gateway's /v1, or /SERVICE/v1, with a person's key from AIRPODS_KEY and the gateway's CA;
    the llama.cpp service behind it)."""
    from airpods.chat.client import Endpoint
    from airpods.stack.targets import gateway_spec, read_ca

    key = stack.environ.get("AIRPODS_KEY", "").strip()
    if not key:
        raise UsageError("--gateway needs a person's key in AIRPODS_KEY",
                         hint="ask for one (airpods keys add NAME prints it), then: export AIRPODS_KEY=apk-...")
    gw = gateway_spec(stack)
    if not gw.url:
        raise UsageError(f"the gateway service '{gw.name}' publishes no port", hint=f"see [services.{gw.name}]")
    routes = dict(gw.gateway_routes)
    prefix = f"/{service}/v1" if service else "/v1"
    if prefix not in routes:
        raise UsageError(f"the gateway serves no {prefix}",
                         hint=f"its routes: {', '.join(routes) or 'none'} (only enabled llama.cpp services are routed)")
    own_cert = any(v.target.endswith("/cert.pem") for v in gw.volumes)
    ca = None if own_cert else read_ca(stack, gw)  # your own certificate: the system's trust store
    return Endpoint(gw.url.rstrip("/") + prefix, key, ca), routes[prefix]


def gateway_spec(stack: Any, specs: dict | None = None):
    specs = specs if specs is not None else stack.specs(create_secrets=False)
    found = [s for s in specs.values() if kind_of(s.kind).door]
    if not found:
        raise UsageError("this config has no gateway service (kind = \"gateway\")",
                         hint="enable the built-in one: [services.gateway] enabled = true   (see docs/gateway.md)")
    return found[0]


def read_ca(stack: Any, spec) -> str:
    """The PEM of the gateway's root certificate, read from its data volume."""
    from airpods.errors import AirpodsError
    from airpods.gateway.ca import data_volume, root_path
    from airpods.paths import podman_volume_dir

    tls = next((v.source for v in spec.volumes if v.target.endswith("/cert.pem")), None)
    if tls is not None:
        raise UsageError(f"the gateway uses your own certificate ({tls}), not its local CA",
                         hint="clients trust it as they trust the CA that issued it")
    volume = data_volume(spec)
    if volume is None:
        raise UsageError(f"services.{spec.name} has no volume at /data, where Caddy keeps its CA",
                         hint=f"add volumes = [{{ source = \"airpods_gateway_data\", target = \"/data\" }}] "
                              f"to [services.{spec.name}]")
    try:
        labels = stack.runtime.volume_labels(volume)  # None: none yet
        root = stack.runtime.volume_path(volume) if labels is not None else None
    except AirpodsError:  # no Podman to ask: the local driver's folder
        labels, root = None, None
    from airpods.orchestrate.running import owned_by

    if labels is not None and not owned_by(labels, stack.project):  # a CA clients will trust: ours only
        raise UsageError(f"the volume {volume} was not created by your airpods for project '{stack.project}'; "
                         "its CA is not one to trust", hint="remove it (podman volume rm) and start the gateway again")
    path = root_path(root or podman_volume_dir(volume, stack.environ))
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"the gateway has not made its CA yet (no {path})",
                         hint=f"start it once: airpods start {spec.name}") from exc


def store_for(stack: Any, spec) -> Any:
    from airpods.models.store import ModelStore

    settings = stack.runtime_settings
    volume = next((v.source for v in spec.volumes if v.target == "/models"), settings["models_volume"])
    labels = {**settings["labels"], "io.airpods.managed": "true", "io.airpods.project": stack.project}
    return ModelStore(stack.runtime, volume, labels)


def in_volume(store, root, name: str) -> str:
    from airpods.models.store import check_name

    check_name(name if name.endswith(".gguf") else f"{name}.gguf")  # "qwen" may name qwen.gguf
    for candidate in (name, f"{name}.gguf"):
        if root is not None and candidate.endswith(".gguf") and (root / candidate).is_file():
            return candidate
    have = [e.file for e in store.list()] if root is not None else []
    raise UsageError(f"no model {name!r} in {store.volume}",
                     details=[f"models there: {', '.join(have) or 'none'}"],
                     hint="name one of them, or a hub model: airpods run ORG/REPO:QUANT "
                          "(e.g. bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M)")


def router_entry(spec, model: str, running: dict[str, str]) -> tuple[str, dict | None]:
    """(the model's id in the router, the config overlay that adds it; None when it is there).
    `running`: id -> file of the preset the running router has, so models `run` added before stay."""
    router = spec.router
    if router.all_models:  # llama-server lists /models itself: the id is the file's name
        return model.removesuffix(".gguf"), None
    mine = next((m.id for m in router.models if m.file == model), None)
    if mine is not None:
        return mine, None
    known = router.ids()
    added = {i: {"file": f} for i, f in running.items() if i not in known}  # run added them before
    again = next((i for i, v in added.items() if v["file"] == model), None)
    if again is not None:
        return again, {"services": {spec.name: {"models": added}}}
    base = model.removesuffix(".gguf")
    model_id, n = base, 2
    while model_id in known or model_id in added:
        model_id, n = f"{base}-{n}", n + 1
    return model_id, {"services": {spec.name: {"models": {**added, model_id: {"file": model}}}}}

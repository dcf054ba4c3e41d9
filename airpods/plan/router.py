"""Router mode: many models behind one llama-server (`mode = "router"`).

Pure: the router part of a ServiceSpec, and the preset INI llama-server reads from it
(`--models-preset`): a global `[*]` section with the service-level flags (the defaults of every
model) and one section per model. Children inherit the router's own argv, and argv beats the
preset, so only what the router process itself needs stays on its command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airpods.plan import roles
from airpods.plan.argv import flag_name

PRESET_PATH = "/etc/airpods/models.ini"  # where the preset is mounted (read-only) in the container
# Flags the router process keeps on its own argv (the router sets host/port/alias per child).
ROUTER_FLAGS = {"--host", "--port", "--no-webui", "--webui", "--ui", "--no-ui", "--models-max", "--models-dir",
                "--models-preset", "--sleep-idle-seconds", "--models-autoload", "--no-models-autoload",
                "--api-key-file"}  # the health probe's key: the router checks it, its children inherit it
DROPPED = {"--model", "-m", "--alias", "-a", "--api-key"}  # per model / never in a file
STATES = ("loaded", "loading", "unloaded", "sleeping", "failed")


@dataclass(frozen=True)
class RouterModelSpec:
    id: str
    file: str
    aliases: tuple[str, ...] = ()
    load_on_startup: bool = False
    args: tuple[tuple[str, Any], ...] = ()  # per-model command_args, rendered
    embeddings: bool = False
    pooling: str | None = None  # what the preset says (embeddings default: mean)
    pooling_set: bool = False  # the user chose it (else airpods' default for an embeddings model)
    ttl: int | None = None  # seconds idle before it sleeps (its memory freed); 0: never; None: idle_unload
    pin: bool = False  # loaded at start and never put to sleep

    @property
    def role(self) -> str:
        """chat, embed or rerank (plan/roles.py), read from its section."""
        return roles.role_of(roles.flags_of(self.args), self.embeddings)

    @property
    def draft(self) -> str | None:
        return roles.draft_of(self.args)


@dataclass(frozen=True)
class RouterSpec:
    models: tuple[RouterModelSpec, ...]  # empty with all_models: llama-server lists /models itself
    all_models: bool = False
    max_loaded: int | None = None  # --models-max (None: llama-server's 4)
    idle_unload: int | None = None
    defaults: tuple[tuple[str, Any], ...] = ()  # the [*] section
    preset_host_path: str = ""
    auto: bool = False  # max_loaded = "auto": the machine view (plan/resident.py) sets max_loaded

    @property
    def processes(self) -> int:
        """How many llama-server children can run at once (llama-server's --models-max default: 4)."""
        limit = self.max_loaded or 4
        return limit if self.all_models else max(1, min(limit, len(self.models)))

    def ids(self) -> dict[str, str]:
        """Every name a client may ask for (id or alias) → the model id."""
        out = {m.id: m.id for m in self.models}
        out.update({a: m.id for m in self.models for a in m.aliases})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"max_loaded": self.max_loaded, "max_loaded_auto": self.auto, "idle_unload": self.idle_unload,
                "all_models": self.all_models,
                "models": [{"id": m.id, "file": m.file, "aliases": list(m.aliases),
                            "load_on_startup": m.load_on_startup, "embeddings": m.embeddings,
                            "role": m.role, "draft": m.draft,
                            "ttl": m.ttl, "pin": m.pin,
                            "pooling": m.pooling, "args": dict(m.args)} for m in self.models],
                "preset": self.preset_host_path}


def split_args(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Service-level command_args → (the router's own argv flags, the [*] defaults)."""
    own, defaults = {}, {}
    for key, value in args.items():
        flag = flag_name(key)
        if flag in DROPPED:
            continue
        (own if flag in ROUTER_FLAGS else defaults)[key] = value
    return own, defaults


def _ini_value(value: Any) -> str | None:
    if value is True:
        return "true"
    if value is False or value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"a preset value cannot span lines: {text[:40]!r}")
    return text


def _lines(pairs: list[tuple[str, Any]]) -> list[str]:
    out = []
    for key, value in pairs:
        text = _ini_value(value)
        if text is not None and flag_name(key) not in DROPPED:
            out.append(f"{flag_name(key).lstrip('-')} = {text}")
    return out


def render_preset(router: RouterSpec, service: str) -> str:
    lines = ["version = 1", f"; written by airpods for service {service}: edit the airpods config, not this file",
             "", "[*]", *_lines(list(router.defaults))]
    if router.idle_unload:  # in [*], not on the router's argv, which would beat each model's own ttl
        lines.append(f"sleep-idle-seconds = {router.idle_unload}")
    for m in router.models:
        lines += ["", f"[{m.id}]", f"model = /models/{m.file}"]
        if m.aliases:
            lines.append(f"alias = {','.join(m.aliases)}")
        if m.load_on_startup or m.pin:
            lines.append("load-on-startup = true")
        if m.pin or m.ttl is not None:  # llama-server sleeps (frees the model's memory) after this idle time
            lines.append(f"sleep-idle-seconds = {-1 if m.pin or not m.ttl else m.ttl}")
        if m.embeddings:
            lines.append("embeddings = true")
        if m.pooling:
            lines.append(f"pooling = {m.pooling}")
        lines += _lines(list(m.args))
    return "\n".join(lines) + "\n"


def router_argv(router: RouterSpec, own: dict[str, Any]) -> dict[str, Any]:
    """The router process's command_args: its own flags plus the router-mode ones."""
    args = dict(own)
    args["models_preset"] = PRESET_PATH
    if router.all_models:
        args["models_dir"] = "/models"
    if router.max_loaded:
        args["models_max"] = router.max_loaded
    return args


def processes_of(svc: Any) -> int:
    """llama-server children a service may run at once, from its config (1 for a single model)."""
    if getattr(svc, "mode", "single") != "router":
        return 1
    limit = svc.max_loaded if isinstance(svc.max_loaded, int) else 4
    return limit if svc.models == "all" else max(1, min(limit, len(svc.models or {})))


def model_sections(svc: Any) -> dict[str, Any]:
    """Per-model command_args as template sections (models.<id>.command_args), like command_args."""
    if getattr(svc, "mode", "single") != "router" or not isinstance(svc.models, dict):
        return {}
    return {f"models.{mid}.command_args": m.command_args for mid, m in svc.models.items()}


def build(name: str, svc: Any, args: dict[str, Any], rendered: dict[str, Any], preset_dir: str,
          coerce: Any) -> tuple[dict[str, Any], RouterSpec, str]:
    """(the router's command_args, its RouterSpec, the preset text) for a router service.
    `args` are the rendered, coerced service-level command_args (with the CPU plan's threads)."""
    own, defaults = split_args(args)
    models = []
    if isinstance(svc.models, dict):
        for mid, m in svc.models.items():
            per_model = rendered.get(f"models.{mid}.command_args", {})
            margs = tuple((k, coerce(v, m.command_args.get(k))) for k, v in per_model.items())
            embeds = m.served_role == "embed"  # role = "embed" is embeddings = true (its own preset lines)
            margs += tuple(roles.role_args(None if embeds else m.role, m.draft_model, roles.flags_of(margs)).items())
            models.append(RouterModelSpec(mid, m.file, tuple(m.aliases), m.load_on_startup, margs, embeds,
                                          m.pooling or ("mean" if embeds else None), m.pooling is not None,
                                          m.ttl, m.pin))
    auto = svc.max_loaded in ("auto", None) and svc.models != "all"  # "all": the files are not known here
    fixed = svc.max_loaded if isinstance(svc.max_loaded, int) else None
    router = RouterSpec(tuple(models), svc.models == "all", fixed, svc.idle_unload,
                        tuple(defaults.items()), f"{preset_dir}/{name}.ini", auto)
    return router_argv(router, own), router, render_preset(router, name)


def preset_models(text: str) -> dict[str, str]:
    """The models a preset (as render_preset writes it) gives the router: id -> file in /models."""
    out: dict[str, str] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section and section != "*" and line.startswith("model = /models/"):
            out[section] = line.removeprefix("model = /models/")
    return out


def model_argv(router: RouterSpec, file: str | None = None) -> list[str]:
    """The flags a router's child llama-server runs `file` with: the router's defaults, then that
    model's own section (defaults alone for a file that is not one of its models)."""
    from airpods.plan.argv import render_args

    own = next((dict(m.args) for m in router.models if file in (m.file, m.id)), {})
    return render_args({**dict(router.defaults), **own})

"""The configuration schema (pydantic v2). Unknown keys are errors; values are validated, not
just annotated. Cross-service checks live in `crosscheck.py`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from airpods.config.service_tables import (
    ArgValue,
    GpuPolicy,
    Health,
    Images,
    Port,
    PortMapping,
    Resources,
    RouterModel,
    Strict,
    Variant,
    VolumeMount,
    check_draft,
)
from airpods.config.values import (
    MEMORY,
    MODEL_ID,
    airpods_labels,
    check_capability,
    check_image_ref,
    check_name,
    check_size,
    check_tmpfs_path,
    is_ip,
    is_token,
    plain_text,
)
from airpods.kinds import GENERIC, KINDS


class Service(Strict):
    enabled: bool = True
    kind: str = GENERIC  # a name in airpods/kinds' registry
    image: str | None = None
    images: Images | None = None
    pod: str | None = None
    container: str | None = None
    network_aliases: list[str] | None = None
    ports: list[PortMapping] = []
    volumes: list[VolumeMount] = []
    gpu: GpuPolicy = GpuPolicy()
    health: Health = Health()
    env: dict[str, str] = {}
    resources: Resources = Resources()
    command_args: dict[str, ArgValue] = {}
    args: list[str] = []
    entrypoint_override: list[str] | str | None = None
    default_model: str | None = None
    # llama.cpp, one model: a smaller model of the same vocabulary that drafts tokens for it
    # (speculative decoding: --model-draft); a GGUF file in the model volume
    draft_model: str | None = None
    role: Literal["chat", "embed", "rerank"] | None = None  # llama.cpp, one model: what it serves (None: chat)
    api_key: str | None = None
    hardening: Literal["strict", "default"] | None = None  # None: runtime.hardening
    cap_add: list[str] = []  # capabilities given back under strict (CHOWN, NET_BIND_SERVICE, ...)
    tmpfs: dict[str, str] = {}  # more paths written in memory under strict: {"/var/cache/x" = "256m"}
    depends_on: list[str] = []
    memory_check: Literal["refuse", "warn", "off"] = "refuse"  # llama.cpp: an estimate over budget refuses start
    metrics: bool = True  # llama.cpp: --metrics (Prometheus /metrics, for `top` and monitoring) unless false
    scrape_interval: str = Field(default="15s", pattern=r"^[0-9]+(ms|s|m|h)$")  # prometheus: how often it scrapes
    mode: Literal["single", "router"] = "single"  # llama.cpp: one model, or many behind llama-server's router
    # router: --models-max; "auto" (a router's default): as many as its memory budget holds at once
    max_loaded: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] | None = None
    idle_unload: int | None = Field(default=None, ge=1)  # seconds idle before a model unloads: --sleep-idle-seconds
    models: dict[str, RouterModel] | Literal["all"] | None = None  # router: id -> model, or "all" in the volume
    # gateway: the address its HTTPS port listens on, the llama.cpp service behind /v1, the names
    # its certificate covers besides localhost and 127.0.0.1, and the user's own certificate.
    listen: str | None = None
    default: str | None = None
    hostnames: list[str] = []
    tls_cert: str | None = None
    tls_key: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            names = [repr(k) for k in KINDS]
            raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]} (got {v!r})")
        return v

    @field_validator("cap_add")
    @classmethod
    def _caps(cls, v: list[str]) -> list[str]:
        return [check_capability(cap) for cap in v]

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs(cls, v: dict[str, str]) -> dict[str, str]:
        return {check_tmpfs_path(path): check_size(size, f"tmpfs size for {path}") for path, size in v.items()}

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: str | None) -> str | None:
        """One token, as a bearer header carries it; the value is never shown (it is a key)."""
        if v and not is_token(v):  # "": no key
            raise ValueError("must be one token of printable characters: no space, line break or other control "
                             'character (the value is not shown); "auto" generates one, "" means none')
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        import ipaddress

        if v is not None:
            try:
                ipaddress.ip_address(v)
            except ValueError as exc:
                raise ValueError(f"listen {v!r} is not an IP address (e.g. \"127.0.0.1\" or \"0.0.0.0\")") from exc
        return v

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9*][A-Za-z0-9.:*-]*", name):
                raise ValueError(f"hostname {name!r} must be a DNS name or an IP address")
        return v

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _tls_file(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute path to a PEM file")
        return None if v is None else plain_text(v, "path")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else check_image_ref(v)

    @field_validator("pod", "container")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "name")

    @field_validator("network_aliases")
    @classmethod
    def _aliases(cls, v: list[str] | None) -> list[str] | None:
        for alias in v or []:
            check_name(alias, "network alias")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\Z", key):
                raise ValueError(f"env name {key!r} is not a valid environment variable name")
        return v

    @field_validator("command_args")
    @classmethod
    def _args(cls, v: dict[str, ArgValue]) -> dict[str, ArgValue]:
        for key in v:
            if not re.match(r"^-{0,2}[A-Za-z0-9][A-Za-z0-9_-]*\Z", key):
                raise ValueError(f"command_args key {key!r} is not a valid flag name")
        return v

    @model_validator(mode="after")
    def _has_image(self) -> Service:
        if self.image is None and (self.images is None or not any(self.images.model_dump().values())):
            raise ValueError("set 'image' or at least one of 'images.cpu/cuda/rocm/vulkan'")
        if self.image is not None and self.images is not None:
            raise ValueError("set either 'image' or 'images', not both")
        if self.mode == "router":
            self._check_router()
        elif self.models is not None or self.max_loaded is not None:
            raise ValueError("'models' and 'max_loaded' are for mode = \"router\"; "
                             "set mode = \"router\" or remove them")
        if self.kind == "llamacpp" and self.mode == "single" and not self.default_model:
            raise ValueError("a llamacpp service needs 'default_model' (a GGUF file in the model volume)")
        self._check_role()
        gateway_keys = [k for k in ("listen", "default", "hostnames", "tls_cert", "tls_key")
                        if k in self.model_fields_set]
        if gateway_keys and self.kind != "gateway":
            raise ValueError(f"'{gateway_keys[0]}' is for kind = \"gateway\" services")
        if self.kind == "gateway" and len(self.ports) != 1:
            raise ValueError("a gateway publishes one HTTPS port: ports = [{ host = 8443, container = 8443 }]")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both 'tls_cert' and 'tls_key' (your certificate and its key), or neither "
                             "for the gateway's own local CA")
        return self

    def _check_role(self) -> None:
        for key in ("draft_model", "role"):
            if getattr(self, key) is not None and (self.kind != "llamacpp" or self.mode != "single"):
                where = f"each model's own table (models.ID.{key})" if self.mode == "router" else "llamacpp services"
                raise ValueError(f"'{key}' is for {where}")
        if self.draft_model is not None:
            check_draft(self.draft_model, self.role)

    def _check_router(self) -> None:
        if self.kind != "llamacpp":
            raise ValueError("mode = \"router\" is for kind = \"llamacpp\" services")
        if self.models is None:
            raise ValueError("a router service needs 'models': a table of models, "
                             "or \"all\" for every GGUF in the volume")
        if self.models == "all":
            return
        if not self.models:
            raise ValueError("'models' is empty: add [services.NAME.models.ID] tables, or models = \"all\"")
        names: dict[str, str] = {}
        for mid in self.models:
            if not MODEL_ID.match(mid):
                raise ValueError(f"model id {mid!r} must be letters, digits, '.', '_', ':', '+' or '-'")
            names[mid] = mid
        for mid, model in self.models.items():
            for alias in model.aliases:
                if alias in self.models:
                    raise ValueError(f"models.{mid}: alias {alias!r} is the id of another model")
                if alias in names and names[alias] != mid:
                    raise ValueError(f"models.{mid}: alias {alias!r} is also an alias of models.{names[alias]}")
                names[alias] = mid
        startup = [m for m, spec in self.models.items() if spec.load_on_startup or spec.pin]
        if isinstance(self.max_loaded, int) and len(startup) > self.max_loaded:
            raise ValueError(f"max_loaded = {self.max_loaded} but {len(startup)} models load on startup "
                             f"({', '.join(startup)}): raise max_loaded or load fewer on startup (pinned ones load "
                             "on startup)")
        pinned = [m for m, spec in self.models.items() if spec.pin]
        if pinned and isinstance(self.max_loaded, int) and len(pinned) >= self.max_loaded:
            raise ValueError(f"max_loaded = {self.max_loaded} leaves no room beside the pinned models "
                             f"({', '.join(pinned)}): raise it, or use max_loaded = \"auto\"")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not a model id or alias of this router "
                             f"(ids: {', '.join(self.models)})")


class Runtime(Strict):
    network: str = "airpods"
    restart_policy: Literal["no", "always", "on-failure", "unless-stopped"] = "unless-stopped"
    start_timeout: float | None = Field(default=None, gt=0)
    stop_timeout: int = Field(default=10, ge=0, le=3600)
    models_volume: str = "airpods_llamacpp_models"
    llamacpp_base_port: Port = 8080
    socket: str | None = None
    cpu_plan: Literal["split", "off"] = "split"  # split the CPUs among llama.cpp processes
    gpu_plan: Literal["auto", "off"] = "auto"  # place llama.cpp models on GPUs; "off": every GPU to every service
    memory_budget: str = "auto"  # "auto" (80% of this machine's or cgroup's memory), a size ("12g"), or "off"
    labels: dict[str, str] = {}  # extra labels on everything airpods creates
    project: str | None = None  # the scope; None: derived from the config file (see config/project.py)
    name_prefix: str | None = None  # pods and containers: None = "" for the default project, else "PROJECT-"
    # least privilege (plan/hardening.py): strict drops every capability, no new privileges, a
    # read-only root where the kind allows; "default" is Podman's own defaults
    hardening: Literal["strict", "default"] = "strict"

    @field_validator("network", "models_volume")
    @classmethod
    def _n(cls, v: str) -> str:
        return check_name(v, "name")

    @field_validator("project")
    @classmethod
    def _p(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "project")

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        return v if v in (None, "") else check_name(v, "name_prefix")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            plain_text(key, "label")
            plain_text(value, f"label {key!r} value")
            if not key or "=" in key:
                raise ValueError(f"label {key!r} must be a non-empty name without '='")
            if key in airpods_labels():
                raise ValueError(f"label {key!r} is one airpods sets itself: choose another name")
        return v

    @field_validator("memory_budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        if v not in ("auto", "off") and not MEMORY.match(v):
            raise ValueError(f"memory_budget {v!r} must be \"auto\", \"off\" or a size like \"12g\"")
        return v


class GlobalGpu(Strict):
    force_cpu: bool = False
    variant: Variant | None = None


HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}\Z")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\Z")


def _address(name: str) -> bool:
    """An IP address or a DNS name, and nothing else: it goes into HAProxy's configuration as a word."""
    return is_ip(name) or bool(DNS_NAME.match(name))


class Host(Strict):
    """[hosts.NAME]: another airpods host's gateway, routed to by the hub (docs/hosts.md). Its CA and
    the key it gave this host are stored by `airpods hosts add`, never written here."""

    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        if any(ord(c) < 33 or ord(c) == 127 for c in v.strip()):  # urlsplit would drop a newline silently
            raise ValueError(f"{v!r} holds a space or a control character")
        parts = urlsplit(v.strip())
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"{v!r}: the port must be a number from 1 to 65535") from None
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{v!r} must be the https:// address of another host's gateway, e.g. "
                             "https://gpu-box.lan:8443 (no path, no user)")
        if not _address(parts.hostname):
            raise ValueError(f"{v!r}: {parts.hostname!r} is neither an IP address nor a DNS name")
        return f"https://{parts.netloc}"


class Config(Strict):
    runtime: Runtime = Runtime()
    gpu: GlobalGpu = GlobalGpu()
    services: dict[str, Service] = {}
    hosts: dict[str, Host] = {}

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, v: dict[str, Host]) -> dict[str, Host]:
        for name in v:
            if not HOST_NAME.match(name):
                raise ValueError(f"host name {name!r} must be lower-case letters, digits or '-' (at most 31), "
                                 "starting with a letter or digit")
        return v

    @field_validator("services")
    @classmethod
    def _service_names(cls, v: dict[str, Service]) -> dict[str, Service]:
        for name in v:
            check_name(name, "service name")
        return v

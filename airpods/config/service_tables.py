"""The tables inside a service's table (ports, volumes, gpu, health, resources, images, a router's
models): pydantic v2 models with the same rules as the schema (config/schema.py) they belong to."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from airpods.config.values import (
    GGUF_FILE,
    MEMORY,
    MODEL_ID,
    check_image_ref,
    check_name,
    plain_text,
)

Variant = Literal["cpu", "cuda", "rocm", "vulkan"]
ArgScalar = str | int | float | bool
ArgValue = ArgScalar | list[str | int | float]

Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PortMapping(Strict):
    host: Port | None = None
    container: Port
    host_ip: str = "127.0.0.1"

    @field_validator("host_ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(v)
        except ValueError as exc:
            raise ValueError(f"host_ip {v!r} is not an IP address (e.g. '127.0.0.1')") from exc
        return v


class VolumeMount(Strict):
    source: str
    target: str
    mode: Literal["ro", "rw"] = "rw"

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("/"):
            plain_text(v, "source")
            if ":" in v:
                raise ValueError(f"source {v!r} holds ':', which separates a mount's parts")
            return v  # a host path (bind mount)
        return check_name(v, "volume name")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"target {v!r} must be an absolute path inside the container")
        plain_text(v, "target")
        if ":" in v:
            raise ValueError(f"target {v!r} holds ':', which separates a mount's parts")
        return v


class GpuPolicy(Strict):
    enabled: bool = True
    force_cpu: bool = False
    devices: list[int | str] | None = None  # pin to these GPUs (indices or UUIDs); the GPU plan keeps to them
    memory: str | None = None  # the most VRAM the GPU plan may give it ("8g"); the rest of the model stays in RAM

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not MEMORY.match(v):
            raise ValueError(f"memory {v!r} must be a size like \"8g\" or \"512m\"")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[int | str] | None) -> list[int | str] | None:
        if v is not None and not v:
            raise ValueError("devices = [] pins to no GPU; leave it out, or set enabled = false for the CPU")
        for d in v or []:
            if isinstance(d, int) and d < 0:
                raise ValueError(f"GPU index {d} must be 0 or more")
        return v


class Health(Strict):
    path: str | None = "/"
    expected_status: tuple[int, int] = (200, 299)
    timeout: float = Field(default=120.0, gt=0, le=86400)
    # After start: Podman's health check, from the kind (see plan/health.py). interval = 0: none.
    interval: float = Field(default=30.0, ge=0, le=86400)  # seconds between checks
    retries: int = Field(default=3, ge=1, le=100)  # failures in a row before it counts as unhealthy
    start_period: float | None = Field(default=None, ge=0, le=86400)  # failures ignored; None: `timeout`
    probe_timeout: float = Field(default=10.0, gt=0, le=3600)  # one probe request's limit
    max_restarts: int = Field(default=4, ge=0, le=1000)  # restarts in a row before it is left stopped

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"health path {v!r} must start with '/'")
        return v

    @field_validator("expected_status")
    @classmethod
    def _status(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not (100 <= lo <= hi <= 599):
            raise ValueError(f"expected_status {list(v)} must be [lo, hi] with 100 <= lo <= hi <= 599")
        return v


class Resources(Strict):
    memory: str | None = None
    cpus: float | None = Field(default=None, gt=0)
    cpuset: str | None = None  # pin to these CPUs ("0-3,8"); takes the service out of the CPU plan

    @field_validator("cpuset")
    @classmethod
    def _cpuset(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", v):
            raise ValueError(f"cpuset {v!r} must list CPUs like '0-3' or '0,2,4-7'")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not MEMORY.match(v):
            raise ValueError(f"memory {v!r} must look like '512m' or '8g'")
        return v


class Images(Strict):
    cpu: str | None = None
    cuda: str | None = None
    rocm: str | None = None
    vulkan: str | None = None

    @field_validator("cpu", "cuda", "rocm", "vulkan")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        return None if v is None else check_image_ref(v)




def check_draft(name: str, role: str | None) -> None:
    """A draft model is a plain GGUF file name in the model volume, for a chat model."""
    if not GGUF_FILE.match(name) or ".." in name:
        raise ValueError(f"draft_model {name!r} must be a plain .gguf file name in the model volume (no '/', "
                         "no '..'); pull it first: airpods models pull ORG/REPO:QUANT")
    if role not in (None, "chat"):
        raise ValueError(f"draft_model drafts a chat model's tokens; a {role!r} model has none to draft")


class RouterModel(Strict):
    """One model behind a llama.cpp router (services.NAME.models.ID)."""

    file: str
    aliases: list[str] = []
    load_on_startup: bool = False
    ttl: int | None = Field(default=None, ge=0)  # seconds idle before it is unloaded; 0: never (else idle_unload)
    pin: bool = False  # loaded at start, never unloaded when idle, counted first in max_loaded = "auto"
    command_args: dict[str, ArgValue] = {}
    embeddings: bool = False
    pooling: Literal["none", "mean", "cls", "last", "rank"] | None = None
    role: Literal["chat", "embed", "rerank"] | None = None  # what it serves (None: chat, or embed with embeddings)
    draft_model: str | None = None  # a GGUF file of the same vocabulary drafting for it (speculative decoding)

    @field_validator("role")
    @classmethod
    def _role(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("embeddings") and v not in (None, "embed"):
            raise ValueError(f"embeddings = true says role \"embed\", not {v!r}: keep one of them")
        return v

    @field_validator("draft_model")
    @classmethod
    def _draft(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            check_draft(v, "embed" if info.data.get("embeddings") else info.data.get("role"))
        return v

    @property
    def served_role(self) -> str:
        return self.role or ("embed" if self.embeddings else "chat")

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        if not GGUF_FILE.match(v) or ".." in v:
            raise ValueError(f"file {v!r} must be a plain .gguf file name in the model volume (no '/', no '..')")
        return v

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: list[str]) -> list[str]:
        for alias in v:
            if not MODEL_ID.match(alias):
                raise ValueError(f"alias {alias!r} must be letters, digits, '.', '_', ':', '+' or '-'")
        return v

"""The service kinds, one module each, registered here by name (docs/architecture.md: adding one)."""

from __future__ import annotations

from airpods.kinds import gateway, generic, hub, llamacpp, ollama, open_webui, prometheus
from airpods.kinds.base import Check, Confine, ServiceKind

KINDS: dict[str, ServiceKind] = {k.name: k for k in (generic.KIND, llamacpp.KIND, ollama.KIND, open_webui.KIND,
                                                     gateway.KIND, prometheus.KIND, hub.KIND)}
GENERIC = generic.KIND.name  # what a service without `kind` is


def kind_of(name: str) -> ServiceKind:
    """The kind called `name`; one not registered (a label from another version) acts as generic."""
    return KINDS.get(name, generic.KIND)


def register(kind: ServiceKind) -> None:
    """Add a kind (its module calls this; the schema then accepts its name)."""
    KINDS[kind.name] = kind


def named(role: str) -> str:
    """The name of the first kind with this role ("llama_server", "door", ...): for the few places
    that must say a kind's name to the user, such as a hint."""
    return next(k.name for k in KINDS.values() if getattr(k, role))


__all__ = ["KINDS", "GENERIC", "Check", "Confine", "ServiceKind", "kind_of", "register", "named"]

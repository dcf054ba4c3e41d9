"""What a service kind is to airpods: one interface that resolve, health, hardening, export, top
and the wiring ask, so that none of them compares kind names (docs/architecture.md says how to add
one). Pure data and small functions; imports nothing of airpods' own."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Check(NamedTuple):
    """What a container's health check is made from."""

    port: int | None  # the container port its server listens on
    router: bool = False  # a llama.cpp router (lists models instead of completing)
    keyed: bool = False  # the probe reads its key from the file mounted at labels.HEALTH_KEY_PATH
    timeout: float = 10.0  # seconds one probe request may take


class Confine(NamedTuple):
    """What least privilege ("strict") gives this kind's container."""

    read_only: bool  # the root filesystem
    writes: tuple[str, ...] = ()  # paths it writes besides its volumes (tmpfs)
    init: bool = True  # Podman's init as PID 1


class ServiceKind(NamedTuple):  # a NamedTuple: made at every command's start, in a third of a dataclass' time
    name: str
    title: str  # how messages name it ("llama.cpp", "Open WebUI")
    # What it serves, which the others are wired to:
    llama_server: bool = False  # llama-server: flags from command_args, router mode, the GPU/CPU/memory plans,
    # an OpenAI-compatible /v1 (the gateway's routes, Open WebUI's connections, chat, run, top's rows)
    ollama_api: bool = False  # Ollama's API (Open WebUI's Ollama connection; one CPU share)
    chat_ui: bool = False  # a chat UI that is wired to every model server (its first admin when exposed)
    door: bool = False  # the HTTPS gateway: TLS, person keys, routes, the access log
    scraper: bool = False  # Prometheus: scrapes the others, its scrape configuration a file
    model_router: bool = False  # the hub: routes /v1 by each request's model to local services and other hosts
    wired: bool = False  # takes the stack's backends (their URLs count in its config hash)
    # Its health: Podman's check (None: none of its own), and the paths a start waits on first.
    check: Callable[[Check], str | None] | None = None
    check_in_config_hash: bool = False  # its check's text counts in the config hash (a changed one recreates)
    gates: tuple[str, ...] = ()
    listen_default: int | None = None  # the port its server listens on when its argv says none
    url_path: str = ""  # what its published URL adds (llama.cpp: /v1)
    confine: Confine | None = None  # strict hardening; None: no-new-privileges only (an image airpods does not know)
    run_as: int | None = None  # the uid its upstream image runs as (a kube securityContext), when not root
    own_keys: tuple[str, ...] = ()  # its config keys added later: in its config hash always, in
    # another kind's only when set (so that other kinds' older hashes still match)
    top: bool = False  # `top` shows a row for it


def secs(value: float) -> str:
    return f"{value:g}"

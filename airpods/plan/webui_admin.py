"""Open WebUI's first admin, made by airpods when others can reach it (pure). Open WebUI makes
whoever signs up first its admin; behind the gateway, or on a port published beyond loopback, that
could be a stranger. Given WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD it creates that admin at its
first start (when it has no user), before it serves a page, and ENABLE_SIGNUP=false closes sign-up."""

from __future__ import annotations

from typing import Any

from airpods.kinds import kind_of
from airpods.plan.gateway import loopback

EMAIL = "admin@airpods.local"


def exposed(kind: str, enabled: bool, ports: Any, gateway_on: bool) -> bool:
    """Whether an enabled Open WebUI can be reached by others than this machine's users."""
    wide = any(not loopback(p.host_ip) for p in ports)
    return kind_of(kind).chat_ui and enabled and (gateway_on or wide)


def apply(env: dict[str, str], secret_env: set[str], password: str) -> None:
    """The admin and no sign-up; the user's own WEBUI_ADMIN_* env wins."""
    env.setdefault("WEBUI_ADMIN_EMAIL", EMAIL)
    env.setdefault("WEBUI_ADMIN_PASSWORD", password)
    env["ENABLE_SIGNUP"] = "false"
    secret_env.add("WEBUI_ADMIN_PASSWORD")

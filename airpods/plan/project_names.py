"""The names a project's objects get (pure): a project other than the default has its name before
its pods and containers, and a network of its own, like compose's project prefix; the default
project keeps the plain names a user's stack has always had."""

from __future__ import annotations

from typing import Any

from airpods.plan.spec import DEFAULT_PROJECT


def object_prefix(config: Any, project: str) -> str:
    """What the names of a project's pods and containers start with: runtime.name_prefix when set,
    else nothing for the default project (a user's stack keeps its plain names) and the project and
    '-' for any other, like compose's project prefix: a second stack with the same service names
    never collides with the first."""
    if config.runtime.name_prefix is not None:
        return config.runtime.name_prefix
    return "" if project == DEFAULT_PROJECT else f"{project}-"


DEFAULT_NETWORK = "airpods"


def network_of(config: Any, project: str) -> str:
    """runtime.network; left at "airpods" in a project other than the default: "airpods-PROJECT", a
    network of its own, so its aliases (llamacpp, open-webui, ...) never answer for another project's."""
    network = config.runtime.network
    if network != DEFAULT_NETWORK or project == DEFAULT_PROJECT:
        return network
    return f"{network}-{project}"

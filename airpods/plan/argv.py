"""command_args → argv. Each value is exactly one argv item; nothing is ever split or joined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flag_name(key: str) -> str:
    """`ctx_size` → `--ctx-size`; a key that starts with '-' is used as written."""
    return key if key.startswith("-") else "--" + key.replace("_", "-")


def _scalar(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def flag_value(argv: tuple[str, ...] | list[str], flags: tuple[str, ...]) -> str | None:
    """The value after the first of `flags` in an argv, or None."""
    items = list(argv)
    for i, item in enumerate(items[:-1]):
        if item in flags:
            return items[i + 1]
    return None


def coerce_rendered(value: Any, was_template: bool) -> Any:
    """A template renders to a string; 'True'/'False' from a template mean a bool flag and an
    empty result means 'leave the flag out'."""
    if not was_template or not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped in ("True", "true"):
        return True
    if stripped in ("False", "false", "", "None"):
        return False
    return value


def render_args(command_args: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in command_args.items():
        flag = flag_name(key)
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                argv += [flag, _scalar(item)]
        else:
            argv += [flag, _scalar(value)]
    return argv

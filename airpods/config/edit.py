"""Changing the user's config file the way a person would: with tomlkit, so comments, order and
formatting stay as they were and only the value that changes is new. Refuses (ConfigError, exit 2)
what it cannot change safely: a read-only file, or a model that a template or another key decides."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airpods.errors import ConfigError


@dataclass(frozen=True)
class Edit:
    path: Path
    before: str
    after: str
    overlay: dict[str, Any]  # the same change as data over the config (to resolve it before writing)

    def diff(self) -> str:
        import difflib

        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=str(self.path), tofile=str(self.path)))


def writable(path: Path) -> None:
    """Refuse a file that is read-only (its mode, even for root) or that we may not write."""
    target = path.resolve()
    where = target if target.exists() else target.parent
    mode = where.stat().st_mode if where.exists() else 0
    if target.exists() and not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)):
        raise ConfigError(f"config file {path} is read-only; nothing was changed",
                          hint="make it writable (chmod u+w), or edit it yourself")
    if not os.access(where, os.W_OK):
        raise ConfigError(f"cannot write config file {path} (permission denied); nothing was changed",
                          hint="edit it yourself, or copy it to a file you own and pass --config")


def _super_table(parent: Any, key: str) -> Any:
    """`parent[key]`, a table of tables ([services.X], [hosts.X]), made when the file has none."""
    import tomlkit

    found = parent.get(key)
    if found is None:
        found = tomlkit.table(is_super_table=True)
        parent[key] = found
    return found


def _service_table(doc: Any, service: str) -> Any:
    import tomlkit

    services = _super_table(doc, "services")
    table = services.get(service)
    if table is None:
        table = tomlkit.table()
        services[service] = table
    return table


def use_model(path: Path, text: str, service: str, model: str) -> Edit:
    """Set `services.SERVICE.default_model`, refusing where the user file makes the model come
    from somewhere else (a template in default_model, or command_args.model not using it)."""
    import tomlkit

    doc = tomlkit.parse(text)
    table = _service_table(doc, service)
    current = table.get("default_model")
    key = f"services.{service}.default_model"
    if isinstance(current, str) and ("{{" in current or "{%" in current):
        raise ConfigError(f"{key} in {path} is a template ({current!s}); nothing was changed",
                          hint=f"edit it yourself: {key} = \"{model}\"")
    args = table.get("command_args")
    literal = args.get("model") if args is not None and hasattr(args, "get") else None
    if isinstance(literal, str) and "default_model" not in literal:
        raise ConfigError(f"services.{service}.command_args.model in {path} names the model itself ({literal!s}), "
                          "so default_model would not change it; nothing was changed",
                          hint=f"set it to \"/models/{{{{ default_model }}}}\", or edit it yourself: "
                               f"model = \"/models/{model}\"")
    table["default_model"] = model
    return Edit(path, text, tomlkit.dumps(doc), {"services": {service: {"default_model": model}}})


def add_router_model(path: Path, text: str, service: str, model_id: str, model: str) -> Edit:
    """Add `[services.SERVICE.models.ID] file = MODEL` to a router service."""
    import tomlkit

    doc = tomlkit.parse(text)
    table = _service_table(doc, service)
    models = table.get("models")
    if isinstance(models, str):
        raise ConfigError(f"services.{service}.models in {path} is {models!r}: the router lists every model in "
                          "its volume already; nothing was changed", hint=f"airpods models load {model}")
    models = _super_table(table, "models")
    entry = tomlkit.table()
    entry["file"] = model
    models[model_id] = entry
    return Edit(path, text, tomlkit.dumps(doc), {"services": {service: {"models": {model_id: {"file": model}}}}})


def add_host(path: Path, text: str, name: str, url: str, enable: list[str]) -> Edit:
    """Set `[hosts.NAME] url = URL`, and `enabled = true` on the services in `enable` (the gateway
    and the hub, where the config leaves them off)."""
    import tomlkit

    doc = tomlkit.parse(text)
    entry = tomlkit.table()
    entry["url"] = url
    _super_table(doc, "hosts")[name] = entry
    overlay: dict[str, Any] = {"hosts": {name: {"url": url}}}
    for service in enable:
        _service_table(doc, service)["enabled"] = True
        overlay.setdefault("services", {})[service] = {"enabled": True}
    return Edit(path, text, tomlkit.dumps(doc), overlay)


def remove_host(path: Path, text: str, name: str) -> Edit | None:
    """Remove `[hosts.NAME]`; None when the file has no such table."""
    import tomlkit

    doc = tomlkit.parse(text)
    hosts = doc.get("hosts")
    if hosts is None or name not in hosts:
        return None
    del hosts[name]
    if not hosts:
        del doc["hosts"]
    return Edit(path, text, tomlkit.dumps(doc), {})


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One changer of the config file at a time (`models use`, `run` never writes it): a lock file
    next to it, opened without following a link someone may have planted there."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target.with_name(f".{target.name}.airpods-lock"), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock config file {path} ({exc.strerror}); nothing was changed",
                          hint=f"remove {target.with_name(f'.{target.name}.airpods-lock')} if it is a link or "
                               "not yours, or edit the file yourself") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write(edit: Edit) -> None:
    """Replace the file atomically, keeping its mode (a symlink's target is what changes). Refuses
    (exit 2, the file as it is) when it changed since `edit` read it. The new text goes to a new
    file of a random name (never through a link), then is renamed over the old."""
    target = edit.path.resolve()
    try:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
    except OSError as exc:
        raise ConfigError(f"cannot read config file {edit.path} again ({exc.strerror}); nothing was changed") from exc
    if current != edit.before:
        raise ConfigError(f"config file {edit.path} changed while airpods was changing it; nothing was written",
                          hint="run the command again (it reads the file as it is now)")
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.airpods-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(edit.after)
            fh.flush()
            os.fchmod(fh.fileno(), mode)  # on the file itself: never through a link
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""Load the configuration: defaults shipped in the package, deep-merged with the user file,
validated in full. Every problem is reported at once, by dotted key path and file:line."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airpods.errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULTS = Path(__file__).resolve().parent.parent / "configs" / "default.toml"


def default_config_path() -> Path:
    """The user's own config file: $XDG_CONFIG_HOME/airpods/config.toml."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "airpods" / "config.toml"


def user_config_path(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Where the user file is looked up, and why: --config > AIRPODS_CONFIG > XDG."""
    if explicit:
        return Path(explicit).expanduser(), "--config"
    env = os.environ.get("AIRPODS_CONFIG")
    if env:
        return Path(env).expanduser(), "AIRPODS_CONFIG"
    return default_config_path(), "XDG_CONFIG_HOME"


@dataclass
class Source:
    path: Path
    text: str
    data: dict[str, Any]


@dataclass
class Loaded:
    """The merged raw data plus where it came from (for error locations and `config path`)."""

    data: dict[str, Any]
    sources: list[Source] = field(default_factory=list)

    def where(self, path: tuple[str | int, ...]) -> str:
        from airpods.config.locate import locate

        for source in reversed(self.sources):  # the user file wins, so look there first
            line = locate(source.text, path)
            if line is not None:
                return f"{source.path}:{line}"
        return ""


def read_toml(path: Path) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist",
                          hint="run `airpods config init` to write one") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        import re

        msg = str(exc)
        at = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"{path}:{at.group(1)}:{at.group(2)}" if at else str(path)
        msg = msg[: at.start()].strip() if at else msg
        raise ConfigError(f"{path} is not valid TOML", [f"{where}: {msg}"],
                          hint="fix the syntax at the line shown") from exc
    return Source(path, text, data)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; everything else (lists included) is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


IMAGE_KEYS = ("image", "images")


def merge_services(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's services over the defaults. A user's `image` means "this image, whatever the GPU"
    and replaces the default's `images`; a user's `images` replaces the default's `image` (its
    variants merge with the default's, key by key). A service of the user's own with a known kind
    and no image at all gets that kind's default images."""
    merged = deep_merge(defaults, user)
    by_kind = {}
    for table in defaults.values():
        if isinstance(table, dict) and table.get("kind") and table["kind"] not in by_kind:
            by_kind[table["kind"]] = {k: table[k] for k in IMAGE_KEYS if k in table}
    for name, table in user.items():
        if not isinstance(table, dict) or not isinstance(merged.get(name), dict):
            continue
        base = defaults.get(name) if isinstance(defaults.get(name), dict) else None
        if base is not None:
            for mine, theirs in (("image", "images"), ("images", "image")):
                if mine in table and theirs not in table:
                    merged[name].pop(theirs, None)
        elif not any(k in table for k in IMAGE_KEYS) and table.get("kind") in by_kind:
            merged[name].update(by_kind[table["kind"]])
    return merged


def load_raw(user_file: str | os.PathLike[str] | None = None, *, required: bool = False) -> Loaded:
    """Defaults + the user file (if it exists; an explicit file must exist)."""
    defaults = read_toml(DEFAULTS)
    loaded = Loaded(defaults.data, [defaults])
    path, origin = user_config_path(user_file)
    if path.exists() or required or origin != "XDG_CONFIG_HOME":
        user = read_toml(path)
        loaded.data = deep_merge(defaults.data, user.data)
        services = user.data.get("services")
        if isinstance(services, dict) and isinstance(defaults.data.get("services"), dict):
            loaded.data["services"] = merge_services(defaults.data["services"], services)
        loaded.sources.append(user)
    return loaded


def overlay(loaded: Loaded, data: dict[str, Any]) -> Loaded:
    """`data` over the loaded config, as one more source (its text, JSON, keys the spec cache)."""
    import json

    return Loaded(deep_merge(loaded.data, data),
                  [*loaded.sources, Source(Path("<airpods run>"), json.dumps(data, sort_keys=True), data)])


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> Any:
    """Optional[X] / X | None / list[X] → X (preferring a model or a dict)."""
    import types
    import typing

    from pydantic import BaseModel

    while typing.get_origin(tp) in (typing.Union, types.UnionType, list, tuple):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = next((a for a in args if typing.get_origin(a) is dict or
                   (isinstance(a, type) and issubclass(a, BaseModel))), args[0] if args else None)
    return tp


def _known_fields(model: Any, loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the table that holds loc[-1], for 'did you mean'."""
    import typing

    from pydantic import BaseModel

    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if typing.get_origin(current) is dict:  # a user-chosen key such as a service name
            current = _unwrap(typing.get_args(current)[1])
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = _unwrap(info.annotation)
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(exc: Any, loaded: Loaded) -> list[str]:
    from airpods.config.schema import Config

    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic reports a union's branches separately; keep the first branch's message only
        loc = tuple(p for p in loc if p not in {"str", "int", "float", "bool", "list[union[str,int,float]]"})
        if "literal['all']" in loc and isinstance(err.get("input"), dict):
            continue  # models = {table}: the "all" branch of the union does not apply
        if loc and loc[-1] == "dict[str,RouterModel]" and isinstance(err.get("input"), str):
            continue  # models = "...": only the "all" branch applies
        loc = tuple(p for p in loc if p not in {"dict[str,RouterModel]", "literal['all']"})
        path = _dotted(loc)
        where = loaded.where(loc)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = difflib.get_close_matches(key, _known_fields(Config, loc), n=1)
            msg = f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] not in {"value_error", "assertion_error"} and "input" in err:
                msg += f" (got {err['input']!r})"
        line = f"{path}: {msg}" if path else msg
        problems.append(f"{line}  [{where}]" if where else line)
    return list(dict.fromkeys(problems))


def validate(loaded: Loaded) -> Any:
    """Raw data → `Config`, or ConfigError listing every problem."""
    from pydantic import ValidationError

    from airpods.config.crosscheck import crosscheck
    from airpods.config.schema import Config

    try:
        config = Config.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError("the configuration is invalid", format_validation_error(exc, loaded),
                          hint="fix the keys listed, then run `airpods config validate`") from exc
    problems = crosscheck(config)
    if problems:
        located = []
        for path, msg in problems:
            where = loaded.where(path)
            located.append(f"{_dotted(path)}: {msg}" + (f"  [{where}]" if where else ""))
        raise ConfigError("the configuration is invalid", located,
                          hint="fix the keys listed, then run `airpods config validate`")
    return config

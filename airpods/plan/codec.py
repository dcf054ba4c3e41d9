"""Frozen dataclasses to JSON-shaped data and back, from their fields' type hints (the spec cache
and the spec hash use it; nothing is written by hand per field).

What it reads back: str, int, float, bool, None, `X | None`, tuple[X, ...], fixed tuples,
frozenset[X], dict[K, V], Any (kept as JSON gave it) and nested dataclasses. A record of another
shape (a key the dataclass does not have, a wrong type where a dataclass is wanted) raises
TypeError or ValueError: a cache treats that as a miss."""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any


def encode(value: Any) -> Any:
    """JSON-shaped data: a dataclass as a dict of its fields, tuples as lists, sets sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, (frozenset, set)):
        return sorted(encode(v) for v in value)
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: type, data: Any) -> Any:
    """An instance of dataclass `cls` from what encode() made of one."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{k: _value(hints[k], v) for k, v in data.items()})


def _value(hint: Any, data: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or data is None:
        return data
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], data) if len(inner) == 1 else data
    if dataclasses.is_dataclass(hint):
        return decode(hint, data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in data)
        return tuple(_value(a, v) for a, v in zip(args, data, strict=True))
    if origin is frozenset:
        return frozenset(_value(args[0], v) for v in data)
    if origin is dict:
        return {k: _value(args[1], v) for k, v in data.items()}
    return data

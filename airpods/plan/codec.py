"""Frozen dataclasses to JSON-shaped data and back, from their fields' type hints (the spec cache
and the spec hash use it; nothing is written by hand per field).

What it reads back: str, int, float, bool, None, `X | None`, tuple[X, ...], fixed tuples,
frozenset[X], dict[K, V], Any (kept as JSON gave it) and nested dataclasses. A record of another
shape (a key the dataclass does not have, a wrong type where a dataclass is wanted) raises
TypeError or ValueError: a cache treats that as a miss."""

from __future__ import annotations

import dataclasses
import sys
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
def _fields(cls: type) -> dict[str, Any]:
    """name -> a function that reads that field back, made once per class from its type hints."""
    return {f.name: _reader(_hint(cls.__module__, f.type)) for f in dataclasses.fields(cls)}


@cache
def _hint(module: str, annotation: Any) -> Any:
    """A field's type from its annotation (a string under `from __future__ import annotations`),
    evaluated in its module once per distinct text (cheaper than typing.get_type_hints)."""
    return eval(annotation, vars(sys.modules[module])) if isinstance(annotation, str) else annotation  # noqa: S307


def decode(cls: type, data: Any) -> Any:
    """An instance of dataclass `cls` from what encode() made of one."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    readers = _fields(cls)
    unknown = set(data) - set(readers)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{k: readers[k](v) for k, v in data.items()})


def _same(data: Any) -> Any:
    return data


def _reader(hint: Any) -> Any:
    """A function from JSON-shaped data to a value of type `hint` (None stays None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return _same
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _reader(inner[0]) if len(inner) == 1 else _same
    if dataclasses.is_dataclass(hint):
        return _optional(lambda data: decode(hint, data))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _reader(args[0])
        return _optional(lambda data: tuple(item(v) for v in data))
    if origin is tuple:
        items = [_reader(a) for a in args]
        return _optional(lambda data: tuple(f(v) for f, v in zip(items, data, strict=True)))
    if origin is frozenset:
        item = _reader(args[0])
        return _optional(lambda data: frozenset(item(v) for v in data))
    if origin is dict:
        value = _reader(args[1])
        return _optional(lambda data: {k: value(v) for k, v in data.items()})
    return _same


def _optional(read: Any) -> Any:
    return lambda data: None if data is None else read(data)

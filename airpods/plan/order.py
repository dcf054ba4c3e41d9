"""Dependency order: start in waves (each wave's services are independent), stop in reverse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def dependencies(specs: Mapping[str, Any]) -> dict[str, list[str]]:
    """name -> the services it depends on that exist in `specs` (objects with `depends_on`)."""
    return {n: [d for d in s.depends_on if d in specs] for n, s in specs.items()}


def closure(selected: Iterable[str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """The selected services plus everything they depend on, transitively."""
    seen: dict[str, None] = {}
    todo = list(selected)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen[name] = None
        todo += [d for d in deps.get(name, ()) if d not in seen]
    return list(seen)


def waves(names: Iterable[str], deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Topological levels among `names` (dependencies outside `names` are ignored)."""
    remaining = list(dict.fromkeys(names))
    done: set[str] = set()
    out: list[list[str]] = []
    while remaining:
        wave = [n for n in remaining
                if all(d in done or d not in remaining for d in deps.get(n, ()))]
        if not wave:  # a cycle; the config validator reports it, never loop here
            raise ValueError(f"dependency cycle among {remaining}")
        out.append(wave)
        done.update(wave)
        remaining = [n for n in remaining if n not in done]
    return out

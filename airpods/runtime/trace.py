"""`--debug`'s trace of the runtime port: every call airpods makes to Podman, its arguments in
short, what came back and how long it took, as one line each (a small proxy around the port, as
compose's verbose proxy does). A secret's value is never shown; a spec is shown by its name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

SECRET_ARGS = {"put_secret": 1}  # verb -> the position of the value that is a secret


def short(value: Any) -> str:
    """One argument or result, in a few characters."""
    name = getattr(value, "name", None)
    if hasattr(value, "spec_hash") and isinstance(name, str):
        return f"<spec {name}>"
    if hasattr(value, "status") and isinstance(name, str):  # a ContainerState
        return f"<{name} {value.status}>"
    if isinstance(value, dict):
        return f"<{len(value)} keys>"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"<{len(value)} items>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Traced:
    """The port, with each verb's call said through `say`."""

    def __init__(self, port: Any, say: Callable[[str], None]):
        self._port, self._say = port, say

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._port, name)
        if name.startswith("_") or not callable(value):
            return value

        def traced(*args: Any, **kwargs: Any) -> Any:
            shown = [("********" if SECRET_ARGS.get(name) == i else short(a)) for i, a in enumerate(args)]
            shown += [f"{k}={short(v)}" for k, v in kwargs.items()]
            call = f"podman: {name}({', '.join(shown)})"
            began = time.monotonic()
            try:
                out = value(*args, **kwargs)
            except Exception as exc:
                self._say(f"{call} raised {type(exc).__name__} ({(time.monotonic() - began) * 1000:.0f} ms)")
                raise
            took = f"({(time.monotonic() - began) * 1000:.0f} ms)"
            if isinstance(out, Iterator):
                self._say(f"{call} -> a stream {took}")
            else:
                self._say(f"{call}{'' if out is None else ' -> ' + short(out)} {took}")
            return out

        return traced

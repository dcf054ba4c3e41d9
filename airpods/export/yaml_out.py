"""A small YAML writer for Kubernetes documents (block style; strings quoted when YAML could read
them as anything else). No dependency, and the output round-trips through any YAML parser."""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@:+-]*\Z")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _SPECIAL and not text.endswith(":"):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_scalar(key)}:")
                out += _lines(item, indent + (2 if isinstance(item, dict) else 0))
            elif isinstance(item, str) and "\n" in item:
                out.append(f"{pad}{_scalar(key)}: |")
                out += [f"{pad}  {line}" if line else "" for line in item.rstrip("\n").split("\n")]
            elif isinstance(item, (dict, list)):  # empty
                out.append(f"{pad}{_scalar(key)}: {'{}' if isinstance(item, dict) else '[]'}")
            else:
                out.append(f"{pad}{_scalar(key)}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            sub = _lines(item, indent + 2)
            first = sub[0].lstrip()
            out.append(f"{pad}- {first}")
            out += sub[1:]
        return out
    return [pad + _scalar(value)]


def dump_all(docs: list[dict]) -> str:
    return "".join("---\n" + "\n".join(_lines(doc, 0)) + "\n" for doc in docs)

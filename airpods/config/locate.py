"""Find the line of a TOML file that defines a dotted key path, for error messages.

tomllib keeps no positions, so this scans table headers and `key =` lines and returns the line
whose full key path is the longest prefix of the path asked for."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _split_key(key: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', key)
    return [a or b or c for a, b, c in parts]


def locate(text: str, path: tuple[str | int, ...]) -> int | None:
    want = [str(p) for p in path if not isinstance(p, int)]
    best_line, best_len = None, 0
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            candidates = [table]
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = table + _split_key(key.group(1))
            # An inline table on this line: `x = { a = 1, b = 2 }` defines x.a and x.b too.
            inline = [full + [k] for k in re.findall(r"[{,]\s*([A-Za-z0-9_-]+)\s*=", line)]
            candidates = [full, *inline]
        for cand in candidates:
            n = len(cand)
            if n > best_len and want[:n] == cand:
                best_line, best_len = number, n
    return best_line

"""Prometheus' text exposition format (what llama-server's /metrics and Caddy's metrics answer),
read into (name, labels, value) samples. Only what a scrape needs: comments skipped, escaped
label values unescaped, NaN and infinities kept as floats."""

from __future__ import annotations

import re

_LINE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(m.group("labels") or "")}
        out.append((m.group("name"), labels, value))
    return out


def values(text: str) -> dict[str, float]:
    """name -> value, for an exposition without labels (llama-server's); a name seen twice keeps the sum."""
    out: dict[str, float] = {}
    for name, _labels, value in parse(text):
        out[name] = out.get(name, 0.0) + value
    return out

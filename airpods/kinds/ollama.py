"""kind = "ollama": Ollama's server (its own API, which Open WebUI is wired to)."""

from __future__ import annotations

from airpods.kinds.base import Check, Confine, ServiceKind, secs


def check(f: Check) -> str | None:
    t = secs(f.timeout)
    return f'timeout {t} ollama ps >/dev/null || {{ echo "ollama did not answer ollama ps within {t} s"; exit 1; }}'


KIND = ServiceKind("ollama", "Ollama", ollama_api=True, check=check, confine=Confine(False, (), True))

"""What every request to the hub shares: the headers (with HF_TOKEN, stripped and checked so that a
token copied with a line end never reaches an HTTP header), and an error's text that never holds the
token (requests quotes a header's value in its errors)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from airpods.errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a hub token is made of


def token(environ: Mapping[str, str]) -> str | None:
    """HF_TOKEN without the spaces and line ends around it; exit 2 when what is left cannot be a token."""
    raw = environ.get("HF_TOKEN")
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not _TOKEN.fullmatch(value):
        raise UsageError("HF_TOKEN holds a space, a line break or another character no token has "
                         f"({len(value)} characters; the token itself is not shown)",
                         hint="export it again from the hub's settings page: export HF_TOKEN=hf_...")
    return value


def headers(environ: Mapping[str, str]) -> dict[str, str]:
    out = {"User-Agent": "airpods"}
    secret = token(environ)
    if secret:
        out["Authorization"] = f"Bearer {secret}"
    return out


def endpoint(environ: Mapping[str, str]) -> str:
    return environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def describe(exc: BaseException, environ: Mapping[str, str]) -> str:
    """An exception from requests, for a message: its kind and text with any trace of HF_TOKEN cut
    out (the raw value, the stripped one, and the way repr() writes either)."""
    text = str(exc)
    raw = environ.get("HF_TOKEN") or ""
    for secret in {raw, raw.strip(), repr(raw)[1:-1], repr(raw.strip())[1:-1]}:
        if len(secret) >= 4:
            text = text.replace(secret, "<HF_TOKEN>")
    if raw.strip() and raw.strip()[:8] in text:  # a part of it, however it was quoted
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

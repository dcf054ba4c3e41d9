"""HTTP health probes (stdlib only: status must not pay for importing requests)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HealthResult:
    stage: str  # starting | loading | healthy | unhealthy
    status: int | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.stage == "healthy"

    def describe(self) -> str:
        if self.stage == "starting":
            return "starting (connection refused)" if not self.detail else f"starting ({self.detail})"
        if self.stage == "loading":
            return f"loading (HTTP {self.status})"
        if self.stage == "healthy":
            return f"healthy (HTTP {self.status})"
        return f"unhealthy (HTTP {self.status}{': ' + self.detail if self.detail else ''})"


def http_get(url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    if parts.scheme == "https":  # the gateway: a liveness check of our own port, so its CA is not asked for
        import ssl

        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "127.0.0.1", parts.port or 443, timeout=timeout,
            context=ssl._create_unverified_context())  # noqa: S323
    else:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        # llama-server with its web UI answers 415 on / unless gzip is accepted.
        conn.request("GET", parts.path or "/", headers={"Accept-Encoding": "gzip", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def probe(url: str, expected: tuple[int, int] = (200, 299), *, timeout: float = 2.0,
          headers: dict[str, str] | None = None) -> HealthResult:
    try:
        status, body = http_get(url, timeout=timeout, headers=headers)
    except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return HealthResult("starting")
    except TimeoutError:
        return HealthResult("starting", detail="no answer yet")
    except (http.client.HTTPException, OSError) as exc:
        return HealthResult("starting", detail=type(exc).__name__)
    lo, hi = expected
    if lo <= status <= hi:
        return HealthResult("healthy", status)
    if status == 503:
        return HealthResult("loading", status)
    return HealthResult("unhealthy", status, body[:120].decode("utf-8", "replace").strip())


def probe_all(urls: list[str], expected: tuple[int, int] = (200, 299), *,
              timeout: float = 2.0, headers: dict[str, str] | None = None) -> HealthResult:
    """Healthy only when every URL is (gates first, each with 2xx; the last with `expected`);
    otherwise the first answer that is not healthy, so its stage is what the user sees."""
    result = HealthResult("healthy", 200)
    for i, url in enumerate(urls):
        result = probe(url, expected if i == len(urls) - 1 else (200, 299), timeout=timeout, headers=headers)
        if not result.healthy:
            return result
    return result


def served_model(base_url: str, *, api_key: str | None = None, timeout: float = 1.0) -> str | None:
    """The model id an OpenAI-compatible server reports at /v1/models (llama-server wants the
    API key there when one is set)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    try:
        status, body = http_get(base_url.rstrip("/") + "/models", timeout=timeout, headers=headers)
        if status != 200:
            return None
        data = json.loads(body)
        models = data.get("data") or data.get("models") or []
        return str(models[0].get("id") or models[0].get("name")) if models else None
    except (OSError, ValueError, http.client.HTTPException, AttributeError, IndexError):
        return None

"""Asking another host's gateway what it serves: TLS checked against that host's own CA (never
without), its key sent only once the certificate is verified, stdlib only."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reading:
    """What one look at a host found."""

    url: str
    reachable: bool
    latency_ms: float | None = None  # the GET /v1/models round trip (TLS set up before it)
    models: tuple[str, ...] = ()
    tls_expires: float | None = None  # its certificate's notAfter, epoch seconds
    error: str = ""  # why not reachable, in a few words
    refused: bool = False  # its certificate or its answer refused this host (a fix is due, not a retry)


def context(ca_file: str) -> ssl.SSLContext:
    """A client context that trusts `ca_file` alone (not the system's CAs) and checks the name."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def look(url: str, ca_file: str, key: str, timeout: float = 5.0) -> Reading:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        ctx = context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        return Reading(url, False, error=f"its CA file cannot be read ({exc})", refused=True)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.connect()  # the TLS handshake: nothing of ours is sent before it is verified
        cert = conn.sock.getpeercert() if conn.sock else None
        expires = ssl.cert_time_to_seconds(cert["notAfter"]) if cert and cert.get("notAfter") else None
        started = time.monotonic()
        conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(4 << 20)
        latency = (time.monotonic() - started) * 1000
    except ssl.SSLCertVerificationError as exc:
        return Reading(url, False, error=f"its certificate is not trusted: {exc.verify_message} (checked against "
                                         "its CA alone)", refused=True)
    except ssl.SSLError as exc:
        return Reading(url, False, error=f"TLS failed: {exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        return Reading(url, False, error=_why(exc))
    finally:
        conn.close()
    return _answer(url, response.status, body, latency, expires)


def look_plain(base: str, key: str | None, timeout: float = 5.0) -> Reading:
    """A service of this host, on the port Podman says its container publishes (plain HTTP)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        started = time.monotonic()
        conn.request("GET", "/v1/models", headers={"Accept": "application/json",
                                                   **({"Authorization": f"Bearer {key}"} if key else {})})
        response = conn.getresponse()
        body = response.read(4 << 20)
        latency = (time.monotonic() - started) * 1000
    except (OSError, http.client.HTTPException) as exc:
        return Reading(base, False, error=_why(exc))
    finally:
        conn.close()
    return _answer(base, response.status, body, latency, None)


def _answer(url: str, status: int, body: bytes, latency: float, expires: float | None) -> Reading:
    if status in (401, 403):
        return Reading(url, False, latency, tls_expires=expires, refused=True,
                       error=f"it refused this host's key (HTTP {status}): ask its owner for a new one "
                             "(airpods keys add NAME there)")
    if status == 404:
        return Reading(url, False, latency, tls_expires=expires, refused=True,
                       error="GET /v1/models answered 404: that gateway routes no /v1 (there: a router, a hub, or "
                             "services.gateway.default)")
    if status != 200:
        return Reading(url, False, latency, tls_expires=expires, error=f"GET /v1/models answered HTTP {status}")
    try:
        data = json.loads(body)
        models = tuple(str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and "id" in m)
    except (ValueError, AttributeError, TypeError):
        return Reading(url, False, latency, tls_expires=expires, error="GET /v1/models did not answer a model list")
    return Reading(url, True, latency, models, expires)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is its gateway running?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, socket.gaierror):
        return f"its name does not resolve ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"

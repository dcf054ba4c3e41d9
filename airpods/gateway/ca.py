"""The gateway's local certificate authority (Caddy's `tls internal`): its root certificate lives in
the gateway's data volume; clients trust it to reach the gateway over verified HTTPS."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from airpods.plan.gateway import CA_PATH, DATA

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def data_volume(spec) -> str | None:
    """The named volume holding the gateway's Caddy storage."""
    return next((v.source for v in spec.volumes if v.target == DATA and v.is_named), None)


def root_path(volume_root: str | Path) -> Path:
    return Path(volume_root) / CA_PATH


def fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate's DER, as AB:CD:... (what browsers and openssl show)."""
    m = _PEM.search(pem)
    if m is None:
        raise ValueError("no PEM certificate in it")
    der = base64.b64decode("".join(m.group(1).split()))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))

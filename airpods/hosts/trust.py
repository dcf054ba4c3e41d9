"""What this host keeps of another: the CA its gateway's certificate is checked against (public,
0644, in the hub's etc/ folder that is mounted into the hub) and the key that host gave this one
(a 0600 secret, in the container's env only; never in the config, argv, a render or a log)."""

from __future__ import annotations

import ssl
from pathlib import Path

from airpods.errors import UsageError
from airpods.plan.hub import HOSTS_DIR, host_key_secret
from airpods.secrets import SecretStore, write_atomic


def ca_path(hub_dir: Path, host: str) -> Path:
    return hub_dir / "etc" / HOSTS_DIR / f"{host}.pem"


def read_ca(path: str) -> str:
    """A CA file's PEM text, refused (exit 2, naming the file) unless it holds a certificate."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the CA file {path} ({getattr(exc, 'strerror', None) or exc})",
                         hint="on that host: airpods keys ca -o airpods-ca.pem, then copy that file here") from None
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(f"{path} holds no PEM certificate ({exc})",
                         hint="use the file `airpods keys ca -o FILE` writes on that host") from None
    if "-----BEGIN CERTIFICATE-----" not in text or "PRIVATE KEY" in text:
        raise UsageError(f"{path} is not a CA certificate alone (a private key must never be copied)",
                         hint="use the file `airpods keys ca -o FILE` writes on that host")
    return text


def store(hub_dir: Path, secrets: SecretStore, host: str, ca_text: str, key: str) -> None:
    path = ca_path(hub_dir, host)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, ca_text, 0o644)
    secrets.put(host_key_secret(host), key)


def forget(hub_dir: Path, secrets: SecretStore, host: str) -> bool:
    """Remove a host's CA and key; True when there was something to remove."""
    removed = False
    for path in (ca_path(hub_dir, host), secrets.path(host_key_secret(host))):
        if path.exists():
            path.unlink()
            removed = True
    return removed


def key_of(secrets: SecretStore, host: str) -> str | None:
    return secrets.read(host_key_secret(host))

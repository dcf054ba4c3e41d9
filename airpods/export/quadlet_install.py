"""Installing Quadlet units: files where systemd's generator reads them (never over a file
airpods did not write), secrets into Podman's store through the runtime port."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airpods.errors import UsageError
from airpods.export.quadlet import MARK, SecretRef, UnitFile


def install_dir(rootless: bool, environ: Mapping[str, str]) -> Path:
    if not rootless:
        return Path("/etc/containers/systemd")
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "containers" / "systemd"


def write_units(files: list[UnitFile], directory: Path) -> None:
    """All or nothing: a file there that airpods did not write stops everything (exit 2)."""
    from airpods.secrets import write_atomic

    foreign = []
    for f in files:
        path = directory / f.name
        try:
            first = path.read_text(encoding="utf-8").splitlines()[:1]
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            first = []
        if first != [MARK]:
            foreign.append(str(path))
    if foreign:
        raise UsageError(f"refusing to replace {len(foreign)} file(s) airpods did not write; nothing was written",
                         details=foreign, hint="move them away, or write elsewhere with -o DIR")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for f in files:
            write_atomic(directory / f.name, f.text, 0o644)  # no secret is in a unit
    except OSError as exc:
        raise UsageError(f"cannot write into {directory}: {exc.strerror or exc}",
                         hint="run as root for /etc/containers/systemd, or use --rootless / -o DIR") from exc


def install_units(runtime: Any, secrets: list[SecretRef], services: list[str], rootless: bool) -> list[str]:
    """Create the secrets (replacing older values) and say what to run next."""
    for ref in secrets:
        runtime.put_secret(ref.name, ref.value)
    ctl = "systemctl --user" if rootless else "systemctl"
    lines = [f"created {len(secrets)} Podman secret(s): {', '.join(r.name for r in secrets) or '-'}",
             f"next: {ctl} daemon-reload && {ctl} start {' '.join(f'{s}.service' for s in services)}"]
    if rootless:
        lines.append("to start at boot without a login: loginctl enable-linger $USER")
    return lines

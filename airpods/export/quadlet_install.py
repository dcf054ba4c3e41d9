"""Installing Quadlet units: files where systemd's generator reads them (never over a file
airpods did not write), secrets into Podman's store through the runtime port."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import UsageError
from airpods.export.quadlet import MARK, PROJECT_MARK, SecretRef, UnitFile
from airpods.plan.spec import DEFAULT_PROJECT

if TYPE_CHECKING:
    from airpods.runtime.port import ContainerRuntime


def install_dir(rootless: bool, environ: Mapping[str, str]) -> Path:
    if not rootless:
        return Path("/etc/containers/systemd")
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "containers" / "systemd"


def _owner(text: str) -> str | None:
    """The project whose unit this text is; None: airpods did not write it."""
    lines = text.splitlines()
    if lines[:1] != [MARK]:
        return None
    second = lines[1] if len(lines) > 1 else ""
    return second[len(PROJECT_MARK):].strip() if second.startswith(PROJECT_MARK) else DEFAULT_PROJECT


def write_units(files: list[UnitFile], directory: Path) -> None:
    """All or nothing: a file there that airpods did not write, or that another project's export
    wrote, stops everything (exit 2)."""
    from airpods.secrets import write_atomic

    foreign, others = [], []
    for f in files:
        path = directory / f.name
        try:
            owner = _owner(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            owner = None
        if owner is None:
            foreign.append(str(path))
        elif owner != _owner(f.text):
            others.append(f"{path} (project {owner})")
    if foreign:
        raise UsageError(f"refusing to replace {len(foreign)} file(s) airpods did not write; nothing was written",
                         details=foreign, hint="move them away, or write elsewhere with -o DIR")
    if others:
        raise UsageError(f"refusing to replace {len(others)} unit(s) another project exported; nothing was written",
                         details=others, hint="give this config its own runtime.project (its units then carry it "
                                              "in their names), or write elsewhere with -o DIR")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for f in files:
            write_atomic(directory / f.name, f.text, 0o644)  # no secret is in a unit
    except OSError as exc:
        raise UsageError(f"cannot write into {directory}: {exc.strerror or exc}",
                         hint="run as root for /etc/containers/systemd, or use --rootless / -o DIR") from exc


def install_units(runtime: ContainerRuntime, secrets: list[SecretRef], services: list[str],
                  rootless: bool) -> list[str]:
    """Create the secrets (replacing older values) and say what to run next. `services`: the units'
    service names (their file stems)."""
    for ref in secrets:
        runtime.put_secret(ref.name, ref.value)
    ctl = "systemctl --user" if rootless else "systemctl"
    lines = [f"created {len(secrets)} Podman secret(s): {', '.join(r.name for r in secrets) or '-'}",
             f"next: {ctl} daemon-reload && {ctl} start {' '.join(f'{s}.service' for s in services)}"]
    if rootless:
        lines.append("to start at boot without a login: loginctl enable-linger $USER")
    return lines

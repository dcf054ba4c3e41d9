"""Generated secrets (API keys, session keys): created once, stored with mode 0600."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from airpods.config.values import is_token
from airpods.errors import ConfigError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\Z")
PLACEHOLDER = "<generated-on-first-start>"  # what a non-creating store returns for a missing secret


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with exactly `mode`, whatever was there before: a private temporary
    file in the same folder, then renamed over it (never half-written, never briefly readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)  # the umask may have taken bits away; never added any
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


WEBUI_ADMIN_SECRET = "open-webui-admin-password"  # the generated password of Open WebUI's first admin


def api_key_name(service: str) -> str:
    """The secret holding a service's generated API key."""
    return f"{service}-api-key"


def web_password_name(service: str) -> str:
    """The secret holding the basic-auth password of a service's port (Prometheus')."""
    return f"{service}-web-password"


def health_key_name(service: str) -> str:
    """The secret holding the key a llama.cpp service's health probe sends (mounted, never in env)."""
    return f"{service}-health-key"


class SecretStore:
    def __init__(self, directory: Path, *, create: bool = True):
        self.directory = directory
        self.create = create  # False: never write (validate); unknown secrets read as a placeholder

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"secret name {name!r} must be lower-case letters, digits, '.', '_', '-'")
        return self.directory / name

    def _read(self, path: Path) -> str | None:
        """The stored value, after checking what holds it: a directory or file others can read is
        tightened to 0700/0600; a link, another owner, or a value that is not one token is an error
        (that never shows the value)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        fix = f"delete it (rm {path}) and airpods makes a new one on the next start"
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"secret {path} is not a regular file (a link or a directory)", hint=fix)
        if st.st_uid != os.geteuid():
            raise ConfigError(f"secret {path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})",
                              hint=f"chown it to yourself, or {fix}")
        self._tighten(self.directory, 0o700)
        self._tighten(path, 0o600)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"secret {path} cannot be read ({type(exc).__name__})", hint=fix) from exc
        if not is_token(value):
            raise ConfigError(f"secret {path} is empty or not a single printable token", hint=fix)
        return value

    @staticmethod
    def _tighten(path: Path, mode: int) -> None:
        with contextlib.suppress(OSError):
            if stat.S_IMODE(os.stat(path).st_mode) & ~mode:
                os.chmod(path, mode)

    def put(self, name: str, value: str) -> Path:
        """Store a given value (a key written in the config, for a file mount); 0600."""
        path = self.path(name)
        if self._read(path) != value:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            write_atomic(path, value + "\n", 0o600)
        return path

    def read(self, name: str) -> str | None:
        """The stored value, or None when there is none (never creates one)."""
        return self._read(self.path(name))

    def get(self, name: str) -> str:
        path = self.path(name)
        value = self._read(path)
        if value is not None:
            return value
        if not self.create:
            return PLACEHOLDER
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        value = secrets.token_urlsafe(32)
        # Written in full under a private name, then linked into place: never seen half-written, and
        # a concurrent airpods that linked first wins (both then use its value).
        tmp = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            value = self._read(path) or PLACEHOLDER
        finally:
            tmp.unlink(missing_ok=True)
        return value

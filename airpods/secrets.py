"""Generated secrets (API keys, session keys): created once, stored with mode 0600."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
PLACEHOLDER = "<generated-on-first-start>"  # what a non-creating store returns for a missing secret


def api_key_name(service: str) -> str:
    """The secret holding a service's generated API key."""
    return f"{service}-api-key"


class SecretStore:
    def __init__(self, directory: Path, *, create: bool = True):
        self.directory = directory
        self.create = create  # False: never write (validate); unknown secrets read as a placeholder

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"secret name {name!r} must be lower-case letters, digits, '.', '_', '-'")
        return self.directory / name

    def get(self, name: str) -> str:
        path = self.path(name)
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        if not self.create:
            return PLACEHOLDER
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        value = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its value
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        return value

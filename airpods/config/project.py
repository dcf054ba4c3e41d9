"""The scope a config's objects belong to (docker-compose's project name).

`runtime.project` when set; otherwise "default" for the user's own config file (or none at all),
and the file's name for any other file: `airpods --config ~/lab.toml` is the project "lab". Objects
created before scopes existed carry no project label and belong to "default", so a user's stack
stays theirs. Two configs on one machine are two projects: neither sees the other's objects."""

from __future__ import annotations

import re
from pathlib import Path

from airpods.labels import DEFAULT_PROJECT, LABEL_PROJECT


def derive(config_file: Path, default_file: Path, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    try:
        same = config_file.expanduser().resolve() == default_file.expanduser().resolve()
    except OSError:
        same = False
    if same:
        return DEFAULT_PROJECT
    name = re.sub(r"[^a-z0-9_.-]+", "-", config_file.stem.lower()).strip("-._")
    return name or DEFAULT_PROJECT


def project_of(labels: dict[str, str] | None) -> str:
    """The project an object belongs to, from its labels (none: the default project)."""
    return (labels or {}).get(LABEL_PROJECT) or DEFAULT_PROJECT

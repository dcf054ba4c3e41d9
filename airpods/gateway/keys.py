"""Person keys for the gateway: one per name, kept in a 0600 JSON file in airpods' folder for the
project, and rendered into the 0600 `keys.caddy` that the gateway imports from its read-only mount
(a Caddy `map` from "Bearer KEY" to the owner's name). A change touches the Caddyfile: Caddy's
`--watch` polls it every second and reloads, so a revoked key stops working within seconds without
restarting anything. (Caddy 2.6 reloads when the Caddyfile's modification time changes; later
versions when the adapted config differs: a rewritten key file is both.)"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from airpods.errors import UsageError
from airpods.plan.gateway import CADDYFILE, KEYS_FILE
from airpods.secrets import write_atomic

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}\Z")
PREFIX = "apk-"  # tells an airpods gateway key from a backend key at a glance


@dataclass(frozen=True)
class Key:
    name: str
    created: float
    last_used: float | None = None


class KeyStore:
    def __init__(self, directory: Path):
        self.directory = directory  # paths.gateway_dir(project)
        self.records = directory / "keys.json"
        self.etc = directory / "etc"

    @classmethod
    def of(cls, spec) -> KeyStore:
        """The key store of a gateway service's spec."""
        return cls(Path(spec.gateway_dir))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.etc.mkdir(exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                write_atomic(self.records, json.dumps(data, indent=1, sort_keys=True) + "\n", 0o600)
                self.render(data)

    def _load(self) -> dict:
        try:
            data = json.loads(self.records.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"keys": {}}
        except (OSError, ValueError) as exc:
            raise UsageError(f"the gateway's key file {self.records} cannot be read ({type(exc).__name__})",
                             hint="restore it from a backup, or remove it and add the keys again") from exc
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not all(
                NAME.match(n) and isinstance(r, dict) and isinstance(r.get("key"), str)
                and r["key"].startswith(PREFIX) and r["key"][len(PREFIX):].replace("-", "").replace("_", "").isalnum()
                for n, r in data["keys"].items()):
            raise UsageError(f"the gateway's key file {self.records} is not what airpods writes "
                             "(a JSON object with a \"keys\" table of records)",
                             hint="restore it from a backup, or move it away and add the keys again "
                                  "(airpods keys add NAME)")
        return data

    def keys(self) -> list[Key]:
        data = self._load()["keys"]
        return [Key(n, float(r.get("created", 0)), r.get("last_used")) for n, r in sorted(data.items())]

    def add(self, name: str) -> str:
        """A new key for `name`, returned once; only keys.json and keys.caddy hold it afterwards."""
        if not NAME.match(name):
            raise UsageError(f"key name {name!r} must be letters, digits, '.', '_', '@', '+' or '-' (up to 64)",
                             hint="use the person's name or e-mail: airpods keys add alice@lab")
        key = PREFIX + secrets.token_urlsafe(32)
        with self._locked() as data:
            if name in data["keys"]:
                raise UsageError(f"there is a key for '{name}' already", hint=f"revoke it first (airpods keys "
                                 f"revoke {name}) to give '{name}' a new one, or choose another name")
            data["keys"][name] = {"key": key, "created": time.time()}
        return key

    def revoke(self, name: str) -> None:
        with self._locked() as data:
            if name not in data["keys"]:
                known = ", ".join(sorted(data["keys"])) or "none"
                raise UsageError(f"there is no key for '{name}'", hint=f"keys: {known} (airpods keys list)")
            del data["keys"][name]

    def note_use(self, seen: dict[str, float]) -> None:
        """Record when each owner's key was last used (from the gateway's access log)."""
        with self._locked() as data:
            for name, when in seen.items():
                record = data["keys"].get(name)
                if record is not None and when > (record.get("last_used") or 0):
                    record["last_used"] = when

    def count(self) -> int:
        return len(self._load()["keys"])

    def caddy_text(self, data: dict | None = None) -> str:
        """keys.caddy's text: a Caddy map from the Authorization header to the key's owner."""
        data = self._load() if data is None else data
        lines = ["# Written by airpods keys; do not edit (airpods keys add/revoke rewrite it).",
                 "map {http.request.header.Authorization} {http.auth.user.id} {"]
        for n, r in sorted(data["keys"].items()):  # the scheme's case is the client's (RFC 9110)
            lines += [f'\t"Bearer {r["key"]}" "{n}"', f'\t"bearer {r["key"]}" "{n}"']
        lines += ['\tdefault ""', "}"]
        return "\n".join(lines) + "\n"

    def render(self, data: dict | None = None) -> None:
        """Write keys.caddy from keys.json, then touch the Caddyfile so a running gateway reloads."""
        self.etc.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.etc / KEYS_FILE, self.caddy_text(data), 0o600)
        caddyfile = self.etc / CADDYFILE
        if caddyfile.exists():
            os.utime(caddyfile)

    def write_config(self, text: str) -> None:
        """The Caddyfile from the spec (spec.gateway_config), and keys.caddy; both 0600 in the folder
        the gateway mounts. Every start and export calls it, so a running gateway gets today's routes."""
        self.etc.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        os.chmod(self.etc, 0o700)
        if not (self.etc / KEYS_FILE).exists():
            self.render()
        path = self.etc / CADDYFILE
        try:
            same = path.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            write_atomic(path, text, 0o600)

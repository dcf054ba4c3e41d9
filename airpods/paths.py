"""Where airpods keeps its own files (never the current directory)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def private_folder(path: Path) -> Path:
    """A folder of airpods' own processes (their logs and records): made 0700, tightened if not."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "airpods"


def secrets_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return data_dir(environ) / "secrets"


def lock_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The lock `start` holds while it creates (one per user, as each user has their own Podman)."""
    return data_dir(environ) / "start.lock"


def router_lock(environ: Mapping[str, str], project: str, service: str) -> Path:
    """The lock `airpods run` holds while it adds a model to a router: its preset is read, changed,
    written and read again by the router as one step (two runs at once lost a model)."""
    return data_dir(environ) / "routers" / f"{project}-{service}.lock"


def failures_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Why a service last failed to start (out of memory), for `status`."""
    return data_dir(environ) / "failures.json"


def stops_path(environ: Mapping[str, str] = os.environ) -> Path:
    """When airpods last stopped each container (to tell a stop from a kernel kill)."""
    return data_dir(environ) / "stops.json"


def router_dir(environ: Mapping[str, str] = os.environ, project: str = "default") -> Path:
    """Where router services' preset files live; one folder per project besides the default."""
    base = data_dir(environ) / "router"
    return base if project == "default" else base / "projects" / project


def gateway_dir(environ: Mapping[str, str] = os.environ, project: str = "default") -> Path:
    """The gateway's folder for a project: keys.json (the person keys) and etc/ (the Caddyfile and
    keys.caddy, mounted read-only into the gateway)."""
    return data_dir(environ) / "gateway" / project


def prometheus_dir(environ: Mapping[str, str] = os.environ, project: str = "default") -> Path:
    """Prometheus' folder for a project: etc/prometheus.yml (its scrape configuration, no keys in
    it), mounted read-only into the container."""
    return data_dir(environ) / "prometheus" / project


def hub_dir(environ: Mapping[str, str] = os.environ, project: str = "default") -> Path:
    """The hub's folder for a project: etc/ (HAProxy's configuration, its routes and the CA of each
    host, mounted read-only into the hub; no keys in it)."""
    return data_dir(environ) / "hub" / project


def bench_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`airpods bench`'s history (history.jsonl) and this machine's measured figures (machine.json)."""
    return data_dir(environ) / "bench"


def health_ledger(environ: Mapping[str, str] = os.environ, project: str = "default") -> Path:
    """The watcher's record of restarts for a project (read by `status`); its log sits beside it."""
    return data_dir(environ) / "health" / f"{project}.json"


def podman_volume_dir(name: str, environ: Mapping[str, str] = os.environ) -> Path:
    """Where Podman's local driver keeps a named volume's files for this user (read without asking
    Podman; AIRPODS_VOLUMES_ROOT points elsewhere for tests)."""
    override = environ.get("AIRPODS_VOLUMES_ROOT")
    if override:
        return Path(override) / name / "_data"
    if os.geteuid() == 0:
        return Path("/var/lib/containers/storage/volumes") / name / "_data"
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "containers" / "storage" / "volumes" / name / "_data"

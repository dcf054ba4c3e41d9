"""Find the Podman API socket (or start a private one) and build the adapter."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airpods.errors import RuntimeUnavailable, UsageError
from airpods.runtime.podman_wire import INSTALL_HINT

__all__ = ["INSTALL_HINT", "connect", "resolve_url"]


def _unix_path(url: str) -> str | None:
    if url.startswith("unix://"):
        return url[len("unix://"):]
    if url.startswith("/"):
        return url
    return None


def answers(path: str) -> bool:
    """An AF_UNIX connect check: a stale socket file does not count."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def distrust(path: str, uid: int | None = None) -> str | None:
    """Why a Podman socket cannot be trusted (None: it can): whoever owns it, or may replace it or
    a folder above it, answers for Podman, and airpods would show what they say and send keys where
    they point. The socket and every folder above it must belong to this user or root, and no
    folder may be writable by others unless it is sticky (as /tmp is)."""
    import stat

    me = os.geteuid() if uid is None else uid
    mine = {me, 0}
    where = Path(path)
    try:
        st = os.lstat(where)
    except OSError:
        return None  # not there: nothing answers on it
    if stat.S_ISLNK(st.st_mode):
        where = where.resolve()
        st = os.stat(where)
    if st.st_uid not in mine:
        return f"the socket {path} belongs to uid {st.st_uid}, not to you (uid {me}) or root"
    for folder in where.parents:
        try:
            fs = os.stat(folder)
        except OSError as exc:
            return f"the folder {folder} above the socket {path} cannot be read ({exc.strerror})"
        if fs.st_uid not in mine:
            return f"the folder {folder} above the socket {path} belongs to uid {fs.st_uid}, not to you or root"
        if fs.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not fs.st_mode & stat.S_ISVTX:
            return f"the folder {folder} above the socket {path} is writable by others"
    return None


def _refuse(path: str, why: str, origin: str) -> UsageError:
    return UsageError(f"refusing the Podman socket {path} ({origin}): {why}, so someone else may be answering "
                      "for Podman", hint="point XDG_RUNTIME_DIR at a folder only you can write (or unset it), or "
                                         "pass --url with a socket of your own")


def candidates(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(url, where it came from), in the order they are tried."""
    out = []
    if os.geteuid() == 0:
        out.append(("unix:///run/podman/podman.sock", "root socket"))
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        out.append((f"unix://{runtime_dir}/podman/podman.sock", "user socket"))
    return out


IDLE_SECONDS = 30  # a private service stays this long after its last request, for the next command


def private_dir(environ: Mapping[str, str]) -> Path | None:
    """This user's folder for a private Podman service, shared by airpods' commands (and the health
    watcher) so that each need not start its own: in $XDG_RUNTIME_DIR, else /tmp; 0700 and ours,
    or None (a folder someone else made, or a link: then a fresh private one is used)."""
    import stat

    base = environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    directory = Path(base) / f"airpods-podman-{os.geteuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        return None
    return directory


def start_private_service(podman: str, environ: Mapping[str, str] | None = None) -> str:
    """`podman system service` on a private socket: the one this user's airpods already runs when
    it answers, else a new one. It exits by itself after IDLE_SECONDS without a request, and the
    containers it started keep running."""
    import fcntl

    shared = private_dir(os.environ if environ is None else environ)
    directory = shared or Path(tempfile.mkdtemp(prefix="airpods-podman-"))
    path = directory / "podman.sock"
    with open(directory / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one start at a time; the others then find it answering
        if shared is not None and answers(str(path)):
            return f"unix://{path}"
        subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [podman, "system", "service", f"--time={IDLE_SECONDS}", f"unix://{path}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd=directory,  # conmon leaves files (`oom`) in the service's folder
        )
        deadline = time.monotonic() + 5.0
        delay = 0.005
        while time.monotonic() < deadline:
            if path.exists() and answers(str(path)):
                return f"unix://{path}"
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    raise RuntimeUnavailable("started `podman system service` but its socket never answered",
                             hint="run `podman system service --time=0` by hand to see why")


def resolve_url(url: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """An explicit URL (--url, runtime.socket, CONTAINER_HOST) must answer; the standard
    sockets are tried in turn; else a private service is started."""
    explicit = (url, "--url/runtime.socket") if url else (
        (environ["CONTAINER_HOST"], "CONTAINER_HOST") if environ.get("CONTAINER_HOST") else None)
    if explicit:
        where, origin = explicit
        path = _unix_path(where)
        if path is not None and not answers(path):
            raise RuntimeUnavailable(f"nothing answers on the Podman socket {where} (from {origin})",
                                     hint=f"start it: podman system service --time=0 {where}  "
                                          f"(or unset {origin.split('/')[0]} to use the default socket)")
        if path is not None and (why := distrust(path)):
            raise _refuse(path, why, origin)
        return where, origin
    for candidate, origin in candidates(environ):
        path = _unix_path(candidate)
        if path is None:
            return candidate, origin
        if answers(path):
            if (why := distrust(path)) is not None:
                raise _refuse(path, why, origin)
            return candidate, origin
    podman = shutil.which("podman", path=environ.get("PATH"))
    if not podman:
        raise RuntimeUnavailable("Podman is not installed (no `podman` on PATH and no API socket)",
                                 hint=INSTALL_HINT)
    return start_private_service(podman, environ), "private podman system service"


def connect(url: str | None = None, environ: Mapping[str, str] | None = None) -> Any:
    from airpods.runtime.podman_adapter import PodmanRuntime

    resolved, origin = resolve_url(url, os.environ if environ is None else environ)
    return PodmanRuntime(resolved, origin)

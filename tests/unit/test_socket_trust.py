"""A Podman socket is trusted only when it, and every folder above it, belongs to the user or root
and cannot be replaced by others: whoever answers on it decides what airpods sees (a CA to trust,
where keys go)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from airpods.runtime.connect import distrust, resolve_url

STRANGER = 4242  # a uid that is neither this user nor root


def _fake_api(path: Path) -> socket.socket:
    """Something answering on a unix socket (as a planted fake libpod API would)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def _planted(tmp_path: Path, monkeypatch) -> Path:
    """$DIR/podman/podman.sock that someone else owns: chowned when this runs as root; otherwise
    this process plays a user other than the one who made it."""
    folder = tmp_path / "shared-runtime" / "podman"
    folder.mkdir(parents=True)
    sock = folder / "podman.sock"
    _fake_api(sock)
    if os.geteuid() == 0:
        os.chown(folder, STRANGER, STRANGER)
        os.lchown(sock, STRANGER, STRANGER)
    else:
        mine = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: mine + 1)
    return sock


def test_a_socket_someone_else_owns_is_refused(tmp_path, monkeypatch):
    sock = _planted(tmp_path, monkeypatch)
    assert "belongs to uid" in distrust(str(sock))
    from airpods.errors import UsageError

    with pytest.raises(UsageError, match="refusing the Podman socket") as caught:
        resolve_url(f"unix://{sock}", {})
    assert caught.value.exit_code == 2 and "XDG_RUNTIME_DIR" in caught.value.hint


def test_a_user_socket_in_a_shared_runtime_dir_is_refused(tmp_path, monkeypatch):
    sock = _planted(tmp_path, monkeypatch)
    if os.geteuid() == 0:  # root tries the system socket first: play a user
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    from airpods.errors import UsageError

    with pytest.raises(UsageError, match="belongs to uid"):
        resolve_url(None, {"XDG_RUNTIME_DIR": str(sock.parent.parent), "PATH": ""})


def test_a_folder_others_may_write_above_the_socket_is_refused_unless_sticky(tmp_path):
    open_folder = tmp_path / "open"
    (open_folder / "podman").mkdir(parents=True)
    sock = open_folder / "podman" / "podman.sock"
    _fake_api(sock)
    open_folder.chmod(0o777)
    assert "writable by others" in distrust(str(sock))
    open_folder.chmod(0o1777)  # as /tmp: others may not rename what is not theirs
    assert distrust(str(sock)) is None


def test_the_cli_says_it_in_one_message(tmp_path, monkeypatch, cli):
    sock = _planted(tmp_path, monkeypatch)
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{sock}")
    result = cli("status")
    assert result.code == 2 and "refusing the Podman socket" in result.err and "Traceback" not in result.text

"""Another local user (a real second uid: `nobody`) against airpods: listening on a stopped
service's port gets neither the key nor the prompt (root's airpods), and a fake Podman API planted
in a shared XDG_RUNTIME_DIR is refused (the rootless user's airpods)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.podman_env import free_port, need

pytestmark = [pytest.mark.podman, pytest.mark.rootless]
STRANGER = "nobody"

LISTEN = r"""
import os, socket, sys, threading
out = open(sys.argv[2], "ab", buffering=0)
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
open(sys.argv[2] + ".ready", "w").write(str(os.getpid()))
while True:
    c, _ = s.accept()
    out.write(b"<connection>")
    c.settimeout(1)
    try:
        while (d := c.recv(65536)):
            out.write(d)
    except OSError:
        pass
    c.close()
"""

FAKE_API = r"""
import http.server, os, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"Version": "9.9.9-not-podman"}' if "version" in self.path else b"[]"
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_HEAD = do_POST = do_GET
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer): pass
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
srv = S(sys.argv[1], H)
os.chmod(sys.argv[1], 0o777)
open(sys.argv[1] + ".ready", "w").write(str(os.getpid()))
srv.serve_forever()
"""


def _as_stranger(script: str, *args: str) -> subprocess.Popen:
    need(os.geteuid() == 0, "these tests run a second local user, which needs root", "run scripts/test.sh as root")
    path = Path(tempfile.mkdtemp(prefix="airpods-stranger-")) / "script.py"
    path.write_text(script)
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    return subprocess.Popen(["runuser", "-u", STRANGER, "--", "/usr/bin/python3", str(path), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _end(proc: subprocess.Popen, ready: Path) -> None:
    """The stranger's own process, by the pid it wrote (runuser's child is in no group of runuser's:
    killing runuser, or its process group, left it running), then runuser."""
    import signal

    with contextlib.suppress(OSError, ValueError):
        os.kill(int(ready.read_text()), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "it ended"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_strangers_listener_on_a_stopped_services_port_gets_nothing(tmp_path, write_config):
    from tests.podman_env import require_podman

    require_podman()
    port, run_id = free_port(), uuid.uuid4().hex[:8]
    record = Path(tempfile.mkdtemp(prefix="airpods-heard-")) / "heard"
    os.chmod(record.parent, 0o777)
    single = write_config(f"""
[runtime]
project = "t{run_id}"
[services.llamacpp]
ports = [{{ host = {port}, container = 8080 }}]
[services.open-webui]
enabled = false
""")
    router = write_config(f"""
[runtime]
project = "t{run_id}"
[services.llamacpp]
mode = "router"
default_model = "m1"
ports = [{{ host = {port}, container = 8080 }}]
[services.llamacpp.models.m1]
file = "m1.gguf"
[services.open-webui]
enabled = false
""")
    proc = _as_stranger(LISTEN, str(port), str(record))
    ready = Path(str(record) + ".ready")
    try:
        _wait_for(ready, proc)
        env = {**os.environ}
        runs = [[sys.executable, "-m", "airpods", "--config", single, "chat", "my secret plans"],
                [sys.executable, "-m", "airpods", "--config", router, "models", "ps"],
                [sys.executable, "-m", "airpods", "--config", router, "models", "load", "m1"]]
        for argv in runs:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
            assert done.returncode == 1 and "is not running" in done.stderr, done.stderr
        time.sleep(0.5)
    finally:
        _end(proc, ready)
    heard = record.read_bytes() if record.exists() else b""
    assert heard == b"", heard[:300]
    key = (tmp_path / "data" / "airpods" / "secrets" / "llamacpp-api-key")
    assert not key.exists() or key.read_text().strip().encode() not in heard


def test_a_fake_podman_api_in_a_shared_runtime_dir_is_refused(rootless_user):
    shared = Path(tempfile.mkdtemp(prefix="airpods-shared-xdg-"))
    os.chmod(shared, 0o1777)  # a runtime dir everyone may write (as /tmp is)
    sock = shared / "podman" / "podman.sock"
    proc = _as_stranger(FAKE_API, str(sock))
    ready = Path(str(sock) + ".ready")
    try:
        _wait_for(ready, proc)
        assert sock.stat().st_uid != rootless_user.home.stat().st_uid
        done = rootless_user.run(str(rootless_user.airpods), "status", "--json",
                                 extra_env={"XDG_RUNTIME_DIR": str(shared)})
        version = rootless_user.run(str(rootless_user.airpods), "doctor", extra_env={"XDG_RUNTIME_DIR": str(shared)})
    finally:
        _end(proc, ready)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing the Podman socket" in done.stderr and "belongs to uid" in done.stderr
    assert "Traceback" not in done.stderr and json.loads(done.stdout or "null") is None
    assert "9.9.9-not-podman" not in version.stdout + version.stderr

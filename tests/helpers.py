"""Builders tests share (no fixtures: those live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

from airpods.plan.spec import LABEL_SEAL
from tests.podman_env import need

ROOT = Path(__file__).resolve().parent.parent


def before_the_seal(rt, data_home: Path) -> None:
    """Make the fake's objects look as an airpods from before the seal left them: no seal label,
    and no ownership key yet (the next command makes one and takes them over)."""
    for name, state in list(rt.containers.items()):
        rt.containers[name] = replace(state, labels={k: v for k, v in state.labels.items() if k != LABEL_SEAL})
    for pod in rt.pods.values():
        pod.labels.pop(LABEL_SEAL, None)
    for labels in rt.vol_labels.values():
        labels.pop(LABEL_SEAL, None)
    (data_home / "airpods" / "secrets" / "ownership-key").unlink(missing_ok=True)
    (data_home / "airpods" / "ownership.json").unlink(missing_ok=True)


class Served:
    """What a local server got: each request's method, path, headers and body; raw bytes for a
    listener."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.raw = b""
        self.connections = 0
        self.port = 0

    def saw(self, text: str) -> bool:
        """Whether any request (or any raw byte) carried `text`."""
        blob = self.raw + b"".join(f"{m} {p} {h}".encode() + b for m, p, h, b in self.requests)
        return text.encode() in blob


def http_server(answer, port: int = 0):
    """A local HTTP server on 127.0.0.1 (PORT, or a free one) that answers each request with
    `answer(method, path, headers, body) -> (status, content_type, body bytes)`; a context manager
    yielding a Served."""
    import contextlib
    import http.server
    import threading

    got = Served()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.requests.append((self.command, self.path, dict(self.headers), body))
            status, kind, data = answer(self.command, self.path, dict(self.headers), body)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_HEAD = _any  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    @contextlib.contextmanager
    def running():
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        got.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield got
        finally:
            server.shutdown()
            server.server_close()

    return running()


def listener(port: int = 0):
    """A bare TCP listener on 127.0.0.1 that keeps every byte it is sent and answers nothing (as a
    stranger on a stopped service's port would); a context manager yielding a Served."""
    import contextlib
    import socket
    import threading

    got = Served()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    sock.settimeout(0.2)
    got.port = sock.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            got.connections += 1
            conn.settimeout(0.5)
            with contextlib.suppress(OSError), conn:
                while chunk := conn.recv(65536):
                    got.raw += chunk

    @contextlib.contextmanager
    def running():
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield got
        finally:
            done.set()
            thread.join(2)
            sock.close()

    return running()


def llama_config(port: int, *, router: bool = False, key: str = "sk-test", head: str = "") -> str:
    """A config whose `llamacpp` service listens on host PORT with API key KEY (a router with one
    model, m1, when `router`), memory check off, Open WebUI off; `head` goes first (a comment)."""
    mode = '\nmode = "router"\ndefault_model = "m1"' if router else ""
    models = '\n[services.llamacpp.models.m1]\nfile = "m1.gguf"' if router else ""
    return f"""{head}
[services.llamacpp]{mode}
api_key = "{key}"
memory_check = "off"
ports = [{{ host = {port}, container = 8080 }}]{models}
[services.open-webui]
enabled = false
"""


def with_models(fake, *names: str, volume: str = "airpods_llamacpp_models") -> Path:
    """GGUF-looking files in the fake's model volume (made on disk as Podman's local driver would)."""
    fake.ensure_volume(volume, {})
    root = Path(fake.volume_path(volume))
    for name in names:
        (root / name).write_bytes(b"GGUF" + b"\0" * 60)
    return root


def quadlet_binary() -> str | None:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "get-quadlet.sh")], capture_output=True, text=True,
                         check=False, env={**os.environ})
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    need(bool(path) and os.access(path, os.X_OK), f"the Quadlet generator is not available ({out.stderr[-200:]})",
         "run scripts/get-quadlet.sh (needs Debian's package mirror)")
    return path


def airpods_at(commit: str, into: Path) -> Path | None:
    """The airpods package of `commit`, unpacked from this checkout's history under `into` (a folder
    to put on sys.path); None when the history does not have it (a shallow clone)."""
    import tarfile

    have = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True,
                          check=False)
    if have.returncode != 0:
        return None
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "airpods.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", commit, "airpods"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into

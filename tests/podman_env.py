"""Shared helpers for tests that use a real Podman: availability (fail in CI, skip elsewhere),
unique names per run, clean-up by label, tiny local images."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

BUSYBOX_IMAGE = "localhost/airpods-test/busybox:latest"
LLAMA_IMAGE = "localhost/airpods-test/llama.cpp:server"
OPENWEBUI_IMAGE = "localhost/airpods-test/open-webui:0.12.4"
TEST_LABEL = "io.airpods.test"


def free_port() -> int:
    """A TCP port nothing listens on right now (for a host port in a test config)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """The first of n consecutive TCP ports nothing listens on right now (for llamacpp_base_port,
    whose services take base, base+1, ...): a lone free port's neighbour may be in use."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports found")


def need(condition: bool, why: str, fix: str) -> None:
    """Fail (with CI set) or skip (elsewhere) when a real component is missing."""
    if condition:
        return
    message = f"{why}; {fix}"
    if os.environ.get("CI"):
        pytest.fail(f"CI requires it: {message}", pytrace=False)
    pytest.skip(message)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


def require_podman() -> None:
    from airpods.errors import AirpodsError
    from airpods.runtime.connect import resolve_url

    need(shutil.which("podman") is not None, "Podman is not installed", "run scripts/setup-podman.sh")
    try:
        resolve_url(None, os.environ)
    except AirpodsError as exc:
        need(False, f"the Podman API is not usable ({exc.message})", "run scripts/setup-podman.sh")


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def build_busybox_image() -> str:
    if image_exists(BUSYBOX_IMAGE):
        return BUSYBOX_IMAGE
    busybox = shutil.which("busybox") or "/bin/busybox"
    need(Path(busybox).exists(), "busybox-static is not installed", "apt-get install busybox-static")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "www", "tmp", "data"):
            (root / d).mkdir(parents=True)
        shutil.copy(busybox, root / "bin" / "busybox")
        for applet in ("sh", "httpd", "echo", "sleep", "cat", "wget", "nslookup", "ls", "touch", "mkdir"):
            (root / "bin" / applet).symlink_to("busybox")
        (root / "www" / "health").write_text("ok\n")
        (root / "www" / "api").mkdir()
        (root / "www" / "api" / "version").write_text('{"version":"0.0.0-standin"}\n')
        (root / "www" / "api" / "tags").write_text(
            '{"models":[{"name":"standin-llama:latest","model":"standin-llama:latest","size":1,'
            '"digest":"0","modified_at":"2026-01-01T00:00:00Z","details":{}}]}\n')
        tar = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
        podman("import", "--quiet", "--change", 'CMD ["/bin/sh"]', str(tar), BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


class PodmanRun:
    """A unique id for one test's resources, and clean-up of everything labelled with it."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.network = f"airpods-t{self.id}"
        self.models_volume = f"airpods_t{self.id}_models"

    def name(self, base: str) -> str:
        return f"{base}-{self.id}"

    def header(self, *, keep: tuple[str, ...] = (), project: str | None = None, plain_names: bool = True,
               own_network: bool = True, **runtime: object) -> str:
        """Config lines every test config starts with: its own network, labels, model volume; the
        default services off but those in `keep`; more [runtime] settings from `runtime`.
        `project` another project's name; `plain_names=False` airpods' prefixed object names;
        `own_network=False` the project's own network (airpods-PROJECT)."""
        off = "\n" + "".join(f"[services.{name}]\nenabled = false\n" for name in ("llamacpp", "open-webui")
                             if name not in keep)
        more = "".join(f"{key} = {toml_value(value)}\n" for key, value in runtime.items())
        return f"""
[runtime]
project = "{project or f"t{self.id}"}"
{'name_prefix = ""   # the tests name their objects with the run' + "'s id already" if plain_names else ""}
{f'network = "{self.network}"' if own_network else ""}
models_volume = "{self.models_volume}"
stop_timeout = 3
labels = {{ "{TEST_LABEL}" = "{self.id}" }}
{more}{off}"""

    def cleanup(self) -> None:
        label = f"label={TEST_LABEL}={self.id}"
        pods = podman("pod", "ps", "-q", "--filter", label, check=False).stdout.split()
        if pods:
            podman("pod", "rm", "-f", "-t", "0", *pods, check=False)
        ctrs = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
        if ctrs:
            podman("rm", "-f", "-t", "0", *ctrs, check=False)
        vols = podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if podman("volume", "exists", self.models_volume, check=False).returncode == 0:
            vols.append(self.models_volume)
        if vols:
            podman("volume", "rm", "-f", *vols, check=False)
        podman("network", "rm", "-f", self.network, check=False)


def toml_value(value: object) -> str:
    """A TOML value for a str, bool, number or a flat table (a dict, written inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def llama_table(name: str, model: str, *, ctx: int = 1024, port: int | None = None,
                health: dict[str, object] | None = None, **keys: object) -> str:
    """A single-model [services.NAME] on the locally built llama-server image, its own alias and
    host port, its model from default_model (so `airpods run` can switch it); `health` adds to or
    replaces its health table's keys; `keys` are more keys of the service's table."""
    table = toml_value({"path": "/health", "timeout": 120, **(health or {})})
    more = "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
    return f"""
[services.{name}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {port or free_port()}, container = 8080 }}]
health = {table}
default_model = "{model}"
{more}[services.{name}.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = {ctx}
no_webui = true
"""

"""What the integration tests build the same way: a busybox web service's config, small GGUFs,
a volume's folder (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.podman_env import BUSYBOX_IMAGE, free_port, podman

WEB = """
[services.{name}]
image = "{image}"
ports = [{{ host = {port}, container = 8080 }}]
volumes = [{{ source = "{volume}", target = "/data" }}]
health = {{ path = "/health", timeout = {timeout} }}
entrypoint_override = ["/bin/sh", "-c"]
args = ["{script}"]
env = {{ GREETING = "{greeting}" }}
"""


SERVE = "trap 'exit 0' TERM; echo started $GREETING; httpd -f -v -p 8080 -h /www & wait"


def web_config(prun, write_config, *, name="web", script=SERVE, timeout=20, greeting="hello", port=None):
    service = prun.name(name)
    port = port or free_port()
    text = prun.header() + WEB.format(name=service, image=BUSYBOX_IMAGE, port=port, volume=f"{service}_data",
                                      timeout=timeout, script=script, greeting=greeting)
    return write_config(text), service, port


def fake_gguf(path: Path, size: int = 300_000) -> bytes:
    """A small well-formed GGUF header (architecture + file type) followed by filler."""
    import struct

    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kv = (s("general.architecture") + struct.pack("<I", 8) + s("qwen2")
          + s("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", 15))
    data = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", 0) + struct.pack("<Q", 2) + kv
    data += bytes(range(256)) * ((size - len(data)) // 256 + 1)
    path.write_bytes(data[:size])
    return data[:size]


def volume_dir(name: str) -> Path:
    return Path(podman("volume", "inspect", name, "--format", "{{.Mountpoint}}").stdout.strip())

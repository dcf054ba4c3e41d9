"""The quickstart on a machine where llama.cpp's usual port is taken by another program (issue 29
item 6): the config it writes moves llama.cpp's ports to a free pair and says so; a free port
writes nothing about ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import tomlkit

from tests.podman_env import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "quickstart_config.py"
IMAGE = "localhost/airpods/llama.cpp:server"


def run(config: Path, port: int, isolated: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRPODS_QUICKSTART_PORT": str(port), "XDG_CONFIG_HOME": str(isolated / "cfg"),
           "XDG_DATA_HOME": str(isolated / "data"), "CONTAINER_HOST": "unix:///nonexistent/podman.sock"}
    return subprocess.run([sys.executable, str(SCRIPT), str(config), IMAGE, *extra], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def pair() -> int:
    """A port whose next one is free too."""
    while True:
        port = free_port()
        if port < 65000:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port


def test_a_taken_port_moves_llama_cpp_and_says_so(isolated, tmp_path):
    port = pair()
    with socket.socket() as holder:  # another program on the usual port
        holder.bind(("127.0.0.1", port))
        holder.listen()
        out = run(tmp_path / "config.toml", port, isolated)
    assert out.returncode == 0, out.stderr
    data = tomlkit.parse((tmp_path / "config.toml").read_text())
    moved = data["runtime"]["llamacpp_base_port"]
    assert moved != port and f"port {port} is taken" in out.stderr and f"listen on {moved}" in out.stderr
    assert data["services"]["llamacpp"]["images"]["cpu"] == IMAGE
    check = subprocess.run([sys.executable, "-m", "airpods", "--config", str(tmp_path / "config.toml"), "config",
                            "render", "llamacpp", "--json"], capture_output=True, text=True, timeout=60, check=False,
                           env={**os.environ, "XDG_DATA_HOME": str(isolated / "data")})
    assert check.returncode == 0 and f'"host": {moved}' in check.stdout, check.stderr
    written = run(tmp_path / "quickstart.toml", port, isolated, "--write")  # the file of its own: free now
    assert "llamacpp_base_port" not in (tmp_path / "quickstart.toml").read_text(), written.stderr


def test_a_free_port_writes_nothing_about_ports(isolated, tmp_path):
    out = run(tmp_path / "config.toml", pair(), isolated)
    assert out.returncode == 0, out.stderr
    assert "llamacpp_base_port" not in (tmp_path / "config.toml").read_text() and "taken" not in out.stderr

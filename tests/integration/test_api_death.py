"""The Podman API dies in the middle of a start (issue 40, item 7), with real Podman: the test runs
its own `podman system service` and kills it (SIGKILL) as the container's conmon appears. The
error's hint must not say to install Podman, and the next start converges (it failed with "runc
create failed: container with given ID already exists" until an `airpods stop`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.podman_env import BUSYBOX_IMAGE, free_port, podman

pytestmark = pytest.mark.podman


def service(sock: str) -> subprocess.Popen:
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def conmon_of(name: str) -> bool:
    out = subprocess.run(["pgrep", "-f", f"conmon.*{name}"], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def test_a_start_whose_api_died_midway_says_so_and_the_next_start_converges(prun, write_config, tmp_path):
    name = prun.name("halfmade")
    path = write_config(prun.header() + f"""
[services.{name}]
image = "{BUSYBOX_IMAGE}"
entrypoint_override = ["/bin/sh", "-c", "sleep 1000"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ interval = 0 }}
""")
    sock = str(tmp_path / "api.sock")
    api = service(sock)
    argv = [sys.executable, "-m", "airpods", "--url", f"unix://{sock}", "--config", path, "start", name, "--no-wait"]
    start = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not conmon_of(name) and time.monotonic() < deadline and start.poll() is None:
            time.sleep(0.005)
        os.killpg(api.pid, signal.SIGKILL)
        api.wait()
        _out, err = start.communicate(timeout=60)
    finally:
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGKILL)
    if start.returncode == 0:
        pytest.fail(f"the start finished before the API was killed: {err}")  # the kill came too late
    assert "cannot reach the Podman API" in err and "Traceback" not in err, err
    assert shutil.which("podman") and "install Podman" not in err, err
    api = service(sock)
    try:
        again = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), timeout=120,
                               check=False)
        assert again.returncode == 0, again.stderr
        assert "already exists" not in again.stderr
        status = podman("inspect", "--format", "{{.State.Status}}", f"{name}-0", check=False).stdout.strip() or \
            podman("ps", "--filter", f"label=io.airpods.service={name}", "--format", "{{.Status}}").stdout
        assert "running" in status or "Up" in status, status
    finally:
        os.killpg(api.pid, signal.SIGKILL)

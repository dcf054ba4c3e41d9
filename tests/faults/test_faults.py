"""Concurrency and faults against real Podman: two starts at once, a start killed half-way, the
API socket going away, a model volume that runs out of space. Nothing lost, nothing left broken."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.builders import fake_gguf, web_config
from tests.podman_env import podman

pytestmark = pytest.mark.podman


def airpods(*args: str, url: str | None = None) -> list[str]:
    return [sys.executable, "-m", "airpods", *(["--url", url] if url else []), *args]


def run(*args: str, timeout: float = 120, url: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(airpods(*args, url=url), capture_output=True, text=True, timeout=timeout, check=False)


def pods_named(name: str) -> list[str]:
    return podman("pod", "ps", "--format", "{{.Name}}", "--filter", f"name=^{name}$").stdout.split()


def test_two_starts_at_once_both_succeed_with_one_pod(prun, write_config):
    path, svc, _ = web_config(prun, write_config)
    procs = [subprocess.Popen(airpods("--config", path, "start", svc), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert not any("already exists" in err or "Traceback" in err for _, err in results), results
    assert pods_named(svc) == [svc]
    assert len(podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"pod={svc}").stdout.split()) == 2  # infra + 1


def test_start_killed_after_the_pod_was_created_converges_next_time(prun, write_config):
    path, svc, port = web_config(prun, write_config)
    proc = subprocess.Popen(airpods("--config", path, "start", svc), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while podman("pod", "exists", svc, check=False).returncode != 0:
        assert time.monotonic() < deadline and proc.poll() is None, "the pod never appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    again = run("--config", path, "start", svc)
    assert again.returncode == 0, again.stderr
    [row] = json.loads(run("--config", path, "status", svc, "--json").stdout)
    assert row["health"] == "healthy" and pods_named(svc) == [svc]


def test_a_pod_without_its_container_is_recreated(prun, write_config):
    """The state a kill between 'pod created' and 'container created' leaves, made on purpose: a pod
    airpods sealed for this project. A pod of that name that airpods did not create is never taken
    over: neither a plain one nor one that only carries airpods' labels."""
    from airpods.runtime.connect import connect
    from airpods.runtime.owned import OwnedRuntime

    path, svc, _ = web_config(prun, write_config)
    podman("network", "create", prun.network)
    ours = {"io.airpods.managed": "true", "io.airpods.project": f"t{prun.id}"}
    for labels in ({}, ours):
        podman("pod", "create", "--name", svc, "--network", prun.network,
               *[f"--label={k}={v}" for k, v in labels.items()])
        foreign = run("--config", path, "start", svc)
        assert foreign.returncode == 2 and "not created by airpods" in foreign.stderr, foreign.stderr
        assert podman("pod", "exists", svc, check=False).returncode == 0
        podman("pod", "rm", "-f", svc)
    sealed = OwnedRuntime(connect(environ=os.environ), os.environ).seal.stamp("pod", svc, ours)
    podman("pod", "create", "--name", svc, "--network", prun.network, "--label", f"io.airpods.test={prun.id}",
           *[f"--label={k}={v}" for k, v in sealed.items()])
    result = run("--config", path, "start", svc)
    assert result.returncode == 0, result.stderr
    assert podman("container", "exists", f"{svc}-0", check=False).returncode == 0


class PrivateApi:
    """A Podman API service on a socket of the test's own, which the test can take away."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="airpods-api-"))
        self.url = f"unix://{self.dir}/podman.sock"
        self.proc = subprocess.Popen(["podman", "system", "service", "--time=0", self.url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.dir / "podman.sock").exists():
            assert time.monotonic() < deadline, "the private API service did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        (self.dir / "podman.sock").unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def api():
    service = PrivateApi()
    yield service
    service.close()


def test_socket_going_away_during_the_health_wait(prun, write_config, api):
    # Served, but its health path never answers 2xx: start keeps waiting until the socket goes.
    path, svc, _ = web_config(prun, write_config, timeout=120)
    text = Path(path).read_text().replace('path = "/health"', 'path = "/never-there"')
    Path(path).write_text(text)
    proc = subprocess.Popen(airpods("--config", path, "start", svc, url=api.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while podman("container", "exists", f"{svc}-0", check=False).returncode != 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)  # inside the health wait now
    began = time.monotonic()
    api.kill()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert time.monotonic() - began < 10
    assert "Podman API" in err and "Traceback" not in err and "internal error" not in err
    assert err.count("error:") == 1, err


def test_socket_going_away_during_logs_follow(prun, write_config, api):
    path, svc, _ = web_config(prun, write_config)
    assert run("--config", path, "start", svc, url=api.url).returncode == 0
    proc = subprocess.Popen(airpods("--config", path, "logs", "-f", svc, url=api.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert "started hello" in proc.stdout.readline()
    api.kill()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "lost the connection to the Podman API" in err and "Traceback" not in err


def test_import_into_a_full_volume_keeps_earlier_models(prun, cli, write_config, tmp_path):
    # A 1 MiB tmpfs volume (256 pages): the first model fits, the second does not.
    podman("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=nr_blocks=256",
           "--label", f"io.airpods.test={prun.id}", prun.models_volume)
    path = write_config(prun.header())
    small, big = tmp_path / "small.gguf", tmp_path / "big.gguf"
    fake_gguf(small, 300_000)
    fake_gguf(big, 2_000_000)
    assert cli("--config", path, "models", "import", str(small)).code == 0
    before = json.loads(cli("--config", path, "models", "list", "--json").out)
    result = cli("--config", path, "models", "import", str(big))
    assert result.code == 1 and "no space left" in result.err and "Traceback" not in result.text
    assert json.loads(cli("--config", path, "models", "list", "--json").out) == before
    mount = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", prun.models_volume).stdout.strip())
    assert sorted(p.name for p in mount.iterdir()) == [".airpods-models.json", ".airpods-models.lock", "small.gguf"]
    # What the containers see is the same volume: the tmpfs, not the directory under it.
    seen = podman("run", "--rm", "-v", f"{prun.models_volume}:/models:ro", "--entrypoint", "/bin/ls",
                  "localhost/airpods-test/busybox:latest", "/models").stdout.split()
    assert seen == ["small.gguf"]
    os.sync()

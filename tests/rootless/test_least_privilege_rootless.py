"""Least privilege in the user's rootless Podman: llama.cpp, Prometheus and an Ollama stand-in start
healthy under runtime.hardening = "strict", and each container is what the plan says (Open WebUI
and the gateway start under it in test_rootless.py as well)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import OLLAMA_STANDIN, PYTHON_IMAGE
from tests.podman_env import free_port, image_exists, need
from tests.rootless.builders import llama, write_config

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.rootless]
PROMETHEUS_IMAGE = "localhost/airpods-test/prometheus:2"


def test_rootless_containers_get_least_privilege(rootless_user, rl):
    user, svc = rootless_user, f"llm-{rl}"
    for image in (PROMETHEUS_IMAGE, PYTHON_IMAGE):
        need(image_exists(image), f"{image} is not built", "run scripts/test.sh --prepare")
        user.give_image(image)
    conf = write_config(user, rl, llama(svc, free_port()) + f"""
[services.prometheus]
enabled = true
image = "{PROMETHEUS_IMAGE}"
pod = "prom-{rl}"
container = "prom-{rl}-0"
ports = [{{ host = {free_port()}, container = 9090 }}]
volumes = [{{ source = "prom_rl{rl}_data", target = "/prometheus" }}]

[services.ollama]
enabled = true
images = {{ cpu = "{PYTHON_IMAGE}" }}
pod = "ollama-{rl}"
container = "ollama-{rl}-0"
ports = [{{ host = {free_port()}, container = 11434 }}]
volumes = [{{ source = "ollama_rl{rl}_data", target = "/root/.ollama" }}]
entrypoint_override = ["python3", "-u", "-c"]
args = [{json.dumps(OLLAMA_STANDIN)}]
""")

    def airpods(*args: str, timeout: float = 300):
        return user.run(str(user.airpods), "--config", str(conf), *args, timeout=timeout)

    assert airpods("models", "import", str(user.model)).returncode == 0
    started = airpods("start")
    assert started.returncode == 0, started.stdout + started.stderr
    rows = {r["service"]: r for r in json.loads(airpods("status", "--json").stdout)}
    assert rows[svc]["health"] == "healthy" and rows["prometheus"]["health"] == "healthy", rows
    for name, row in rows.items():
        [info] = json.loads(user.podman("inspect", row["container"]).stdout)
        host = info["HostConfig"]
        assert "CAP_NET_BIND_SERVICE" in host["CapDrop"] and "no-new-privileges" in host["SecurityOpt"], name
        assert host.get("Init", False) is (name != "prometheus"), name  # (inspect leaves Init out when false)
        assert host["ReadonlyRootfs"] is (name != "ollama"), name
    status = user.podman("exec", f"{svc}-0", "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    assert "CapEff:\t0000000000000000" in status.stdout and "NoNewPrivs:\t1" in status.stdout, status.stdout
    refused = user.podman("exec", f"{svc}-0", "sh", "-c", "echo x > /app/planted")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused.stderr
    assert user.podman("exec", f"{svc}-0", "sh", "-c", "echo x > /tmp/ok").returncode == 0

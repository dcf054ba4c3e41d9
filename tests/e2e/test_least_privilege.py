"""Real Podman: every kind starts healthy under runtime.hardening = "strict" (the default) with the
project's test images, and each container is what the plan says: no capabilities (its program's
effective set is empty, by the kernel's own /proc), no new privileges, Podman's init, and for
llama.cpp, the gateway and Prometheus a read-only root where only the tmpfs takes a write."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import CADDY_IMAGE, OLLAMA_STANDIN, PYTHON_IMAGE, gateway_table
from tests.podman_env import (
    BUSYBOX_IMAGE,
    OPENWEBUI_IMAGE,
    build_busybox_image,
    free_port,
    image_exists,
    llama_table,
    need,
    podman,
)

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.openwebui, pytest.mark.gateway]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMETHEUS_IMAGE = "localhost/airpods-test/prometheus:2"
READ_ONLY = {"llama", "gw", "prom"}


def stack(prun) -> str:
    rid = prun.id
    return prun.header(keep=("open-webui",)) + llama_table(
        f"llama-{rid}", MODEL, ctx=512) + gateway_table(rid, free_port(), name="gw") + f"""
[services.prometheus]
enabled = true
image = "{PROMETHEUS_IMAGE}"
pod = "prom-{rid}"
container = "prom-{rid}-0"
ports = [{{ host = {free_port()}, container = 9090 }}]
volumes = [{{ source = "prom_{rid}_data", target = "/prometheus" }}]

[services.ollama]
enabled = true
images = {{ cpu = "{PYTHON_IMAGE}" }}
pod = "ollama-{rid}"
container = "ollama-{rid}-0"
ports = [{{ host = {free_port()}, container = 11434 }}]
volumes = [{{ source = "ollama_{rid}_data", target = "/root/.ollama" }}]
entrypoint_override = ["python3", "-u", "-c"]
args = [{json.dumps(OLLAMA_STANDIN)}]

[services.open-webui]
image = "{OPENWEBUI_IMAGE}"
pod = "webui-{rid}"
container = "webui-{rid}-0"
ports = [{{ host = {free_port()}, container = 8080 }}]
volumes = [{{ source = "webui_{rid}_data", target = "/app/backend/data" }}]
health = {{ path = "/health", timeout = 240 }}
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
RAG_EMBEDDING_ENGINE = "openai"

[services.plain]
image = "{BUSYBOX_IMAGE}"
pod = "plain-{rid}"
container = "plain-{rid}-0"
entrypoint_override = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 30 }}
"""


def test_every_kind_starts_healthy_with_least_privilege(prun, cli, write_config, smollm2):
    for image in (CADDY_IMAGE, PROMETHEUS_IMAGE, PYTHON_IMAGE, OPENWEBUI_IMAGE):
        need(image_exists(image), f"{image} is not built", "run scripts/test.sh --prepare")
    build_busybox_image()
    path = write_config(stack(prun))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    started = cli("--config", path, "start")
    assert started.code == 0, started.text
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "status", "--json").out)}
    assert all(r["state"] == "running" for r in rows.values()), rows
    assert {n for n, r in rows.items() if r["health"] == "healthy"} >= {f"llama-{prun.id}", "gateway", "prometheus",
                                                                          "open-webui", "plain"}, rows
    doctor = {c["container"]: c for c in json.loads(cli("--config", path, "doctor", "--json").out)["containers"]}
    for name, row in rows.items():
        [info] = json.loads(podman("inspect", row["container"]).stdout)
        host, short = info["HostConfig"], row["container"].split("-")[0]
        seen = doctor[row["container"]]
        if name == "plain":  # a generic image: no new privileges only
            assert "no-new-privileges" in host["SecurityOpt"] and seen["effective_caps"], seen
            continue
        assert "CAP_SYS_CHROOT" in host["CapDrop"] and "CAP_NET_BIND_SERVICE" in host["CapDrop"], host["CapDrop"]
        assert "no-new-privileges" in host["SecurityOpt"] and host.get("Init", False) is (short != "prom")
        assert host["ReadonlyRootfs"] is (short in READ_ONLY), (name, host["ReadonlyRootfs"])
        assert seen["effective_caps"] == [] and seen["no_new_privileges"] is True, (name, seen)
    llama = rows[f"llama-{prun.id}"]["container"]
    refused = podman("exec", llama, "sh", "-c", "echo x > /app/planted", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    assert podman("exec", llama, "sh", "-c", "echo x > /tmp/ok && cat /tmp/ok", check=False).stdout.strip() == "x"
    assert podman("exec", llama, "sh", "-c", "echo x > /models/planted", check=False).returncode != 0

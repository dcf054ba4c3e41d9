"""A real Open WebUI (pip-installed from PyPI into a local image) wired by airpods to real
llama-server instances and an Ollama stand-in."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import OLLAMA_STANDIN, PYTHON_IMAGE, call, webui_models
from tests.podman_env import LLAMA_IMAGE, OPENWEBUI_IMAGE, free_port, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.openwebui]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Answers what Open WebUI asks an Ollama server for: version, tags (models), ps.


def layout(prun, webui_port: int, ports: tuple[int, int, int], *, long: bool = True) -> str:
    """Two llama.cpp services (`llamacpp-long` on or off), an Ollama stand-in and Open WebUI, on
    the given host ports (llama.cpp, llamacpp-long, Ollama)."""
    rid = prun.id
    return prun.header(keep=("llamacpp", "open-webui")) + f"""
[services.llamacpp]
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "llamacpp-{rid}"
container = "llamacpp-{rid}-0"
ports = [{{ host = {ports[0]}, container = 8080 }}]
[services.llamacpp.command_args]
alias = "fast-chat"
ctx_size = 2048

[services.llamacpp-long]
enabled = {"true" if long else "false"}
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "llamacpp-long-{rid}"
container = "llamacpp-long-{rid}-0"
network_aliases = ["llamacpp-long"]
ports = [{{ host = {ports[1]}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "{MODEL}"
[services.llamacpp-long.command_args]
model = "/models/{{{{ default_model }}}}"
alias = "long-ctx"
ctx_size = 4096

[services.ollama]
enabled = true
images = {{ cpu = "{PYTHON_IMAGE}" }}
pod = "ollama-{rid}"
container = "ollama-{rid}-0"
ports = [{{ host = {ports[2]}, container = 11434 }}]
volumes = [{{ source = "ollama_{rid}_data", target = "/root/.ollama" }}]
entrypoint_override = ["python3", "-u", "-c"]
args = [{json.dumps(OLLAMA_STANDIN)}]

[services.open-webui]
image = "{OPENWEBUI_IMAGE}"
pod = "open-webui-{rid}"
container = "open-webui-{rid}-0"
ports = [{{ host = {webui_port}, container = 8080 }}]
volumes = [{{ source = "webui_{rid}_data", target = "/app/backend/data" }}]
health = {{ path = "/health", timeout = 240 }}
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
RAG_EMBEDDING_ENGINE = "openai"
WEBUI_AUTH = "false"
"""


def test_open_webui_wired_to_every_backend(prun, images, cli, write_config, smollm2):
    port, ports = free_port(), (free_port(), free_port(), free_port())
    base = f"http://127.0.0.1:{port}"
    path = write_config(layout(prun, port, ports))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0

    started = cli("--config", path, "start", "open-webui")
    assert started.code == 0, started.text
    assert "also starting dependencies" in started.err
    token, models = webui_models(base)
    assert {"fast-chat", "long-ctx", "standin-llama:latest"} <= models, models

    answer = call(f"{base}/api/chat/completions", token, {
        "model": "fast-chat", "stream": False, "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hello."}]})
    assert answer["choices"][0]["message"]["content"].strip()
    assert "llama" in json.dumps(answer).lower() or answer.get("model") == "fast-chat"

    [row] = json.loads(cli("--config", path, "status", "open-webui", "--json").out)
    assert row["health"] == "healthy" and row["url"] == base
    assert row["wired_to"] == ["llamacpp", "llamacpp-long", "ollama"]

    # Disable one instance: the restart recreates Open WebUI with the new wiring, and the env wins
    # over what Open WebUI stored in its database on the first start.
    path2 = write_config(layout(prun, port, ports, long=False))
    restarted = cli("--config", path2, "start", "open-webui")
    assert restarted.code == 0, restarted.text
    assert "recreat" in restarted.err
    _, models = webui_models(base)
    assert "fast-chat" in models and "standin-llama:latest" in models and "long-ctx" not in models, models

    # Stop honours depends_on: Open WebUI goes before its backends.
    stopped = cli("--config", path2, "stop", "open-webui", "llamacpp", "ollama")
    assert stopped.code == 0, stopped.text
    lines = [line for line in stopped.err.splitlines() if ": stopped" in line]
    assert lines[0].startswith("✓ open-webui"), lines
    assert podman("volume", "exists", f"webui_{prun.id}_data", check=False).returncode == 0

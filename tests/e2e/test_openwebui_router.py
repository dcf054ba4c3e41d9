"""The real Open WebUI in front of a real llama.cpp router: every router model listed, a chat to a
model that is not loaded yet, and a document embedded through the router's embedding model."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.builders import FILES, call, router, upload, webui_models, webui_table
from tests.podman_env import free_port

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.openwebui]


def test_open_webui_lists_router_models_chats_and_embeds_documents(prun, images, cli, write_config, smollm2):
    for name in FILES:
        assert cli("--config", write_config(prun.header()), "models", "import", str(smollm2), "--name", name).code == 0
    rid, port = prun.id, free_port()
    base = f"http://127.0.0.1:{port}"
    text = prun.header(keep=("open-webui",)) + router(f"rt-{rid}") + webui_table(rid, port)
    path = write_config(text)
    rendered = json.loads(cli("--config", path, "config", "render", "open-webui", "--json").out)["env"]
    assert rendered["RAG_EMBEDDING_ENGINE"] == "openai" and rendered["RAG_EMBEDDING_MODEL"] == "embed"
    assert rendered["RAG_OPENAI_API_BASE_URL"] == f"http://rt-{rid}:8080/v1"
    assert rendered["RAG_OPENAI_API_KEY"] == "********"  # the router's key, masked

    started = cli("--config", path, "start", "open-webui")
    assert started.code == 0, started.text
    token, models = webui_models(base)
    assert {"a", "b", "embed"} <= models, models

    answer = call(f"{base}/api/chat/completions", token, {  # b is not loaded (a is, and max_loaded = 1)
        "model": "b", "stream": False, "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hello."}]})
    assert answer["choices"][0]["message"]["content"].strip()

    file_id = upload(base, token, "llamas.txt", "Llamas are domesticated South American camelids. " * 20)
    deadline, status = time.monotonic() + 180, "pending"
    while time.monotonic() < deadline and status not in ("completed", "failed"):
        status = call(f"{base}/api/v1/files/{file_id}/process/status", token).get("status", "pending")
        time.sleep(0.5)
    assert status == "completed", status
    # The router logs each request it hands to a model: the document went to the embedding model.
    logs = cli("--config", path, "logs", f"rt-{rid}", "-n", "0").out
    assert "proxying request to model embed" in logs, logs[-2000:]

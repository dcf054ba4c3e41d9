"""Router mode in the plan: the preset INI and the router's argv, through `config render`."""

from __future__ import annotations

import json

from tests.unit.builders import ROUTER, render


def test_router_argv_has_no_model_and_carries_router_flags(cli, write_config):
    data = render(cli, write_config(ROUTER))
    cmd = data["command"]
    assert "--model" not in cmd and "--alias" not in cmd and "--ctx-size" not in cmd
    assert cmd[cmd.index("--models-preset") + 1] == "/etc/airpods/models.ini"
    assert cmd[cmd.index("--models-max") + 1] == "2" and "--sleep-idle-seconds" not in cmd  # in the preset's [*]
    assert cmd[cmd.index("--port") + 1] == "8080" and "--host" in cmd
    assert {"target": "/etc/airpods/models.ini", "mode": "ro"}.items() <= next(
        v for v in data["volumes"] if v["target"] == "/etc/airpods/models.ini").items()
    assert data["mode"] == "router" and [m["id"] for m in data["router"]["models"]] == ["chat", "embed", "rerank"]


def test_preset_sections_defaults_templates_and_pooling(cli, write_config, monkeypatch):
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0-3")
    data = render(cli, write_config(ROUTER))
    ini = data["router_preset"]
    star, chat, embed, rerank = ini.split("\n[")[1:]
    assert star.startswith("*]") and "ctx-size = 4096" in star and "n-gpu-layers = 0" in star
    assert "sleep-idle-seconds = 900" in star  # idle_unload: each model's own ttl may differ
    assert "threads = 2" in star  # max_loaded = 2 processes share 4 CPUs
    assert "model = /models/qwen.gguf" in chat and "alias = gpt-4o-mini" in chat
    assert "load-on-startup = true" in chat and "ctx-size = 8192" in chat and "jinja = true" in chat
    assert "embeddings = true" in embed and "pooling = mean" in embed  # OpenAI needs a pooled vector
    assert "pooling = rank" in rerank
    assert "LLAMA_API_KEY" not in ini and data["env"]["LLAMA_API_KEY"] == "********"
    assert data["cpuset"] == "0-3" and data["threads"] == 2


def test_all_models_uses_the_directory(cli, write_config):
    data = render(cli, write_config('[services.llamacpp]\nmode = "router"\nmodels = "all"\n'))
    cmd = data["command"]
    assert cmd[cmd.index("--models-dir") + 1] == "/models" and data["router"]["all_models"] is True


def test_open_webui_embeds_through_the_router_unless_told_otherwise(cli, write_config):
    env = render(cli, write_config(ROUTER), "open-webui")["env"]
    assert env["RAG_EMBEDDING_ENGINE"] == "openai" and env["RAG_EMBEDDING_MODEL"] == "embed"
    assert env["RAG_OPENAI_API_BASE_URL"] == "http://llamacpp:8080/v1"
    own = render(cli, write_config(ROUTER + '[services.open-webui.env]\nRAG_EMBEDDING_MODEL = "mine"\n'),
                 "open-webui")["env"]
    assert own["RAG_EMBEDDING_MODEL"] == "mine"


def test_single_mode_is_unchanged(cli):
    data = json.loads(cli("config", "render", "llamacpp", "--json").out)
    assert data["mode"] == "single" and data["router"] is None and "--model" in data["command"]

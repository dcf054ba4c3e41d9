"""`airpods top` against a real llama-server: during a long streamed generation it shows the service
busy with tokens coming, after it idle; a router with two models loaded has a row for each."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from tests.e2e.builders import api_key, chat_model
from tests.podman_env import LLAMA_IMAGE, free_port, llama_table

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def config(single: str, router: str) -> str:
    return llama_table(single, MODEL, ctx=2048) + f"""
[services.{router}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{router}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
max_loaded = 2
default_model = "one"
[services.{router}.command_args]
ctx_size = 512
no_webui = true
[services.{router}.models.one]
file = "{MODEL}"
load_on_startup = true
[services.{router}.models.two]
file = "copy.gguf"
load_on_startup = true
"""


def _long_generation(url: str, key: str, done: threading.Event) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "Write a long story."}], "stream": True,
                       "max_tokens": 1500, "ignore_eos": True}).encode()
    req = urllib.request.Request(url + "/chat/completions", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        for _ in resp:
            pass
    done.set()


def test_top_shows_a_generation_as_it_runs_and_a_routers_models(prun, cli, write_config, smollm2, isolated):
    single, router = prun.name("top"), prun.name("topr")
    path = write_config(prun.header() + config(single, router))
    for name in (MODEL, "copy.gguf"):
        assert cli("--config", path, "models", "import", str(smollm2), "--name", name).code == 0
    started = cli("--config", path, "start", single, router)
    assert started.code == 0, started.text
    [row] = json.loads(cli("--config", path, "status", single, "--json").out)
    key = api_key(isolated, single)
    done = threading.Event()
    worker = threading.Thread(target=_long_generation, args=(row["url"], key, done), daemon=True)
    worker.start()
    time.sleep(1.0)  # generating
    busy = {r["service"]: r for r in json.loads(cli("--config", path, "top", "--json", single, router).out)}
    assert not done.is_set(), "the generation ended before top looked: make it longer"
    mine = busy[single]
    assert mine["state"] == "running" and mine["requests_processing"] >= 1, mine
    assert mine["generation_tokens_per_s"] > 0 and mine["slots_busy"] >= 1 and mine["kv_cache_used_percent"] > 0
    assert mine["memory_bytes"] > 0
    worker.join(300)
    assert done.is_set()
    idle = {r["service"]: r for r in json.loads(cli("--config", path, "top", "--json", single).out)}
    assert idle[single]["requests_processing"] == 0 and idle[single]["slots_busy"] == 0

    code, _ = chat_model(f"http://127.0.0.1:{_port(cli, path, router)}/v1", api_key(isolated, router), "two")
    assert code == 200
    rows = json.loads(cli("--config", path, "top", "--json", router).out)
    models = sorted(r["model"] for r in rows if r["kind"] == "llamacpp-model")
    assert models == ["one", "two"], rows
    assert all(r["why"] is None and r["slots_total"] for r in rows if r["kind"] == "llamacpp-model")
    table = cli("--config", path, "top", "--once", router)
    assert table.code == 0 and "one" in table.out and "two" in table.out


def _port(cli, path: str, service: str) -> int:
    [row] = json.loads(cli("--config", path, "status", service, "--json").out)
    return int(row["url"].rsplit(":", 1)[1].split("/")[0])

"""Router mode with the real llama-server: many models behind one endpoint, driven through the
official `openai` client and `airpods models ps/load/unload`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.builders import FILES, api_key, router
from tests.podman_env import podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


@pytest.fixture
def models_in_volume(prun, cli, write_config, smollm2):
    path = write_config(prun.header())
    for name in FILES:  # the same GGUF under three names
        result = cli("--config", path, "models", "import", str(smollm2), "--name", name)
        assert result.code == 0, result.text


def client_for(row: dict, key: str):
    from openai import OpenAI

    # The client's own default retries: llama-server's router may close a kept-alive connection as
    # it swaps models, which the client then retries on a new one (seen once in CI).
    return OpenAI(base_url=row["url"], api_key=key, timeout=60, max_retries=2)


def ask(client, model: str) -> str:
    answer = client.chat.completions.create(model=model, max_tokens=8, temperature=0,
                                            messages=[{"role": "user", "content": "Say hi."}])
    return answer.choices[0].message.content or ""


def loaded(cli, path: str, name: str) -> list[str]:
    rows = json.loads(cli("--config", path, "models", "ps", "--service", name, "--json").out)
    assert {"service", "id", "aliases", "state", "file"} <= set(rows[0])
    return [r["id"] for r in rows if r["state"] == "loaded"]


def test_router_serves_every_model_one_at_a_time(prun, cli, write_config, models_in_volume, isolated):
    name = prun.name("router")
    path = write_config(prun.header() + router(name))
    started = cli("--config", path, "start", name)
    assert started.code == 0, started.text
    assert "model a: loading" in started.err or "model a" in started.err
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    assert row["health"] == "healthy" and row["router"]["loaded"] == ["a"] and row["router"]["available"] == 3
    assert "1/3 loaded: a" in cli("--config", path, "status", name).out

    client = client_for(row, api_key(isolated, name))
    listed = client.models.list().data
    ids = {m.id for m in listed}
    aliases = {a for m in listed for a in (m.model_extra or {}).get("aliases", [])}
    assert ids == {"a", "b", "embed"} and {"gpt-4o-mini", "small"} <= aliases

    assert ask(client, "a").strip()
    assert ask(client, "b").strip()  # swaps: max_loaded = 1
    assert loaded(cli, path, name) == ["b"]
    assert ask(client, "gpt-4o-mini").strip()  # an alias of a
    assert loaded(cli, path, name) == ["a"]

    vector = client.embeddings.create(model="embed", input="llamas are camelids").data[0].embedding
    assert len(vector) == 576 and any(v != 0 for v in vector)  # SmolLM2's width, mean-pooled
    assert loaded(cli, path, name) == ["embed"]

    assert cli("--config", path, "models", "unload", "embed").code == 0
    assert loaded(cli, path, name) == []
    assert cli("--config", path, "models", "load", "small").code == 0  # by alias
    assert loaded(cli, path, name) == ["a"]
    unknown = cli("--config", path, "models", "load", "../a")
    assert unknown.code == 2 and "gpt-4o-mini" in unknown.err

    # The preset is mounted read-only and holds no key.
    preset = json.loads(cli("--config", path, "config", "render", name, "--json").out)["router"]["preset"]
    assert preset == str(isolated / "data" / "airpods" / "router" / "projects" / f"t{prun.id}" / f"{name}.ini")
    text = Path(preset).read_text()
    assert "[a]" in text and "pooling = mean" in text and api_key(isolated, name) not in text
    mounts = json.loads(podman("inspect", "--format", "{{json .Mounts}}", f"{name}-0").stdout)
    assert any(m["Destination"] == "/etc/airpods/models.ini" and not m["RW"] for m in mounts)


def test_idle_model_sleeps_and_wakes_on_the_next_request(prun, cli, write_config, models_in_volume, isolated):
    name = prun.name("idle")
    path = write_config(prun.header() + router(name, max_loaded=2, idle=3))
    assert cli("--config", path, "start", name).code == 0
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    client = client_for(row, api_key(isolated, name))
    assert ask(client, "b").strip()
    deadline, states = time.monotonic() + 8, {}
    while time.monotonic() < deadline:
        rows = json.loads(cli("--config", path, "models", "ps", "--service", name, "--json").out)
        states = {r["id"]: r["state"] for r in rows}
        if states.get("b") in ("sleeping", "unloaded"):
            break
        time.sleep(0.5)
    assert states.get("b") in ("sleeping", "unloaded"), states
    assert ask(client, "b").strip()  # woken by the request


def test_a_startup_model_that_cannot_load_fails_the_start_with_its_log(prun, cli, write_config, models_in_volume,
                                                                       tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    assert cli("--config", write_config(prun.header()), "models", "import", str(bad)).code == 0
    name = prun.name("broken")
    text = router(name).replace('file = "chat-a.gguf"', 'file = "broken.gguf"')
    result = cli("--config", write_config(prun.header() + text), "start", name)
    assert result.code == 1, result.text
    assert "model a failed to load" in result.err and "Traceback" not in result.text

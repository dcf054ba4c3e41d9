"""A model split in 3 parts, as the hub serves the big ones: pulled by `org/repo:QUANT` from a
local stand-in of the hub, verified, listed as one model, started in a real llama-server in
single and in router mode (it loads the first part and finds the rest), removed whole. An
interrupted pull resumes the part it was on; a part that fails its sha256 is deleted."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import api_key, chat, chat_model
from tests.gguf_split import split
from tests.hub_standin import serve
from tests.podman_env import LLAMA_IMAGE, free_port, llama_table, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
PARTS = [f"Smol-Q4_1-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


@pytest.fixture
def hub(monkeypatch, smollm2, tmp_path):
    files = {p.name: p.read_bytes() for p in split(smollm2, tmp_path, "Smol-Q4_1", 3)}
    stand_in, server = serve(monkeypatch, {"org/Smol-GGUF": files})
    yield stand_in
    server.shutdown()


def volume_files(prun) -> list[str]:
    from pathlib import Path

    root = podman("volume", "inspect", prun.models_volume, "--format", "{{.Mountpoint}}").stdout.strip()
    return sorted(p.name for p in Path(root).glob("*.gguf"))


def single(name: str) -> str:
    return llama_table(name, PARTS[0])


def router(name: str) -> str:
    return f"""
[services.{name}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "smol"
[services.{name}.command_args]
ctx_size = 1024
no_webui = true
[services.{name}.models.smol]
file = "{PARTS[0]}"
load_on_startup = true
"""


def test_a_split_model_pulls_lists_starts_and_goes_as_one(prun, cli, write_config, hub, isolated):
    one, many = prun.name("split"), prun.name("splitr")
    path = write_config(prun.header() + single(one) + router(many))
    hub.cut[PARTS[1]] = 5_000_000  # the connection drops 5 MB into the second part
    first = cli("--config", path, "models", "pull", "org/Smol-GGUF:q4_1")
    assert first.code == 1 and "resume" in first.err, first.text
    again = cli("--config", path, "models", "pull", "org/Smol-GGUF:Q4_1")
    assert again.code == 0, again.text
    assert f"{PARTS[0]} (part 1/3): already here" in again.err  # the finished part is not fetched again
    assert volume_files(prun) == PARTS
    [entry] = json.loads(cli("--config", path, "models", "list", "--json").out)
    assert entry["file"] == PARTS[0] and entry["parts"] == 3 and entry["architecture"] == "llama"
    assert entry["size"] == sum(len(d) for d in hub.repos["org/Smol-GGUF"].values())

    started = cli("--config", path, "start", one)
    assert started.code == 0, started.text
    [row] = json.loads(cli("--config", path, "status", one, "--json").out)
    assert chat(row["url"], api_key(isolated, one))[0] == 200
    routed = cli("--config", path, "start", many)
    assert routed.code == 0, routed.text
    [row] = json.loads(cli("--config", path, "status", many, "--json").out)
    code, answer = chat_model(row["url"], api_key(isolated, many), "smol")
    assert code == 200 and answer["choices"][0]["message"]["content"].strip()
    assert cli("--config", path, "stop", "--remove").code == 0

    removed = cli("--config", path, "models", "rm", PARTS[0], "--yes")
    assert removed.code == 0, removed.text
    assert volume_files(prun) == []


def test_a_part_that_fails_its_sha256_is_deleted_and_named(prun, cli, write_config, hub):
    path = write_config(prun.header())
    hub.lie.add(PARTS[2])
    result = cli("--config", path, "models", "pull", "org/Smol-GGUF:Q4_1")
    assert result.code == 1 and f"{PARTS[2]}: sha256 mismatch" in result.err and "deleted" in result.err
    assert PARTS[2] not in volume_files(prun)

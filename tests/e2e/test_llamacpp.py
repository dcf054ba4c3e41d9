"""A real llama-server (built from llama.cpp source) started by airpods, end to end."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.builders import MODEL, api_key, chat, llama_service
from tests.podman_env import free_port, free_port_block, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def test_llamacpp_end_to_end(prun, cli, write_config, smollm2, isolated):
    one, two = prun.name("llm"), prun.name("llm2")
    base = free_port_block(4)  # disabled llamacpp and llamacpp-ui keep base and base+1
    header = prun.header(llamacpp_base_port=base)
    path = write_config(header + llama_service(one, one) + llama_service(two, two))

    imported = cli("--config", path, "models", "import", str(smollm2))
    assert imported.code == 0, imported.text
    [entry] = json.loads(cli("--config", path, "models", "list", "--json").out)
    assert entry["file"] == MODEL and entry["architecture"] == "llama" and entry["quantization"] == "Q4_1"
    assert len(entry["sha256"]) == 64

    started = cli("--config", path, "start", one)
    assert started.code == 0, started.text
    assert "loading (HTTP 503)" in started.err or "starting" in started.err
    status = {r["service"]: r for r in json.loads(cli("--config", path, "status", one, "--json").out)}
    url = status[one]["url"]
    assert url == f"http://127.0.0.1:{base + 2}/v1"
    assert status[one]["health"] == "healthy" and status[one]["model"] == MODEL.removesuffix(".gguf")

    code, answer = chat(url, api_key(isolated, one))
    assert code == 200 and answer["choices"][0]["message"]["content"].strip()
    assert chat(url, None)[0] == 401
    assert chat(url, "wrong-key")[0] == 401
    # The key is in the environment, never in the argv.
    argv = podman("inspect", "--format", "{{json .Config.Cmd}}", f"{one}-0").stdout
    assert api_key(isolated, one) not in argv and "--port" in argv and "--host" in argv

    logs = cli("--config", path, "logs", one, "-n", "50")
    assert logs.code == 0 and "model loaded" in logs.out and "listening on" in logs.out

    # A second instance: its own pod, alias and port, same read-only model volume, at the same time.
    second = cli("--config", path, "start", two)
    assert second.code == 0, second.text
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "status", "--json").out)}
    assert rows[one]["health"] == rows[two]["health"] == "healthy"
    assert rows[two]["url"] == f"http://127.0.0.1:{base + 3}/v1"
    assert chat(rows[two]["url"], api_key(isolated, two))[0] == 200
    mounts = podman("inspect", "--format", "{{json .Mounts}}", f"{two}-0").stdout
    assert prun.models_volume in mounts and '"RW":false' in mounts.replace(" ", "")

    stopped = cli("--config", path, "stop")
    assert stopped.code == 0, stopped.text
    assert [e["file"] for e in json.loads(cli("--config", path, "models", "list", "--json").out)] == [MODEL]
    began = time.monotonic()
    again = cli("--config", path, "start", one)
    assert again.code == 0, again.text
    assert time.monotonic() - began < 30
    assert chat(url, api_key(isolated, one))[0] == 200


def test_missing_model_exits_2_and_creates_nothing(prun, cli, write_config, smollm2):
    svc = prun.name("llm")
    path = write_config(prun.header() + llama_service(svc, svc, model="not-there.gguf", port=free_port()))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    result = cli("--config", path, "start", svc)
    assert result.code == 2, result.text
    assert "not-there.gguf" in result.err and MODEL in result.err and "airpods models import" in result.err
    assert podman("pod", "exists", svc, check=False).returncode == 1
    assert podman("network", "exists", prun.network, check=False).returncode == 1


def test_corrupt_model_fails_fast_with_llama_server_error(prun, cli, write_config, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    svc = prun.name("llm")
    path = write_config(prun.header() + llama_service(svc, svc, model="broken.gguf", port=free_port()))
    assert cli("--config", path, "models", "import", str(bad)).code == 0
    began = time.monotonic()
    result = cli("--config", path, "start", svc)
    assert result.code == 1, result.text
    assert time.monotonic() - began < 20
    assert "failed to load model" in result.err and "exited during startup" in result.err

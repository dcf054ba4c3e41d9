"""Config → ServiceSpec, through the same path `config render` uses."""

from __future__ import annotations

import json
import os
import stat

from airpods.probes.gpu import ProbeResult
from tests.unit.builders import render


def test_default_llamacpp_render_is_complete(cli):
    data = render(cli)
    cmd = data["command"]
    for flag in ("--model", "--host", "--port"):
        assert flag in cmd
    assert cmd[cmd.index("--port") + 1] == "8080"
    assert cmd[cmd.index("--model") + 1] == "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cmd[cmd.index("--n-gpu-layers") + 1] == "0"  # no GPU here
    assert "--no-webui" in cmd
    assert "{{" not in json.dumps(data)
    assert data["ports"] == [{"host": 8080, "container": 8080, "host_ip": "127.0.0.1"}]
    assert {"source": "airpods_llamacpp_models", "target": "/models", "mode": "ro"} in data["volumes"]
    assert data["variant"] == "cpu" and data["image"] == "ghcr.io/ggml-org/llama.cpp:server"
    assert set(data) >= {"service", "kind", "image", "variant", "pod", "container", "network", "aliases",
                         "ports", "volumes", "env", "devices", "entrypoint", "command", "health"}


def test_api_key_is_env_only_masked_and_stored_0600(cli, isolated):
    masked = render(cli)
    assert masked["env"]["LLAMA_API_KEY"] == "********"
    shown = render(cli, None, "llamacpp", "--show-secrets")
    key = shown["env"]["LLAMA_API_KEY"]
    assert len(key) >= 32 and key not in " ".join(shown["command"])
    path = isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert render(cli, None, "llamacpp", "--show-secrets")["env"]["LLAMA_API_KEY"] == key  # stable


def test_validate_creates_no_secret(cli, isolated):
    assert cli("config", "validate").code == 0
    assert not (isolated / "data").exists()


def test_gpu_variant_feeds_templates_and_image(cli, monkeypatch):
    monkeypatch.setenv("AIRPODS_GPU", "cuda")
    data = render(cli)
    assert data["variant"] == "cuda" and data["image"].endswith(":server-cuda")
    assert data["command"][data["command"].index("--n-gpu-layers") + 1] == "999"
    cpu = render(cli, None, "llamacpp", "--cpu")
    assert cpu["variant"] == "cpu" and cpu["command"][cpu["command"].index("--n-gpu-layers") + 1] == "0"


def test_forced_variant_without_image_falls_back_to_cpu(cli, monkeypatch):
    monkeypatch.setenv("AIRPODS_GPU", "vulkan")
    assert render(cli, None, "ollama")["variant"] == "cpu"  # ollama has no vulkan image


def test_bad_airpods_gpu_is_a_usage_error(cli, monkeypatch):
    monkeypatch.setenv("AIRPODS_GPU", "metal")
    result = cli("config", "render", "llamacpp")
    assert result.code == 2 and "AIRPODS_GPU" in result.err


def test_templates_can_reference_other_values_and_services(cli, write_config):
    path = write_config("""
[services.llamacpp.env]
BASE = "http://{{ service.aliases[0] }}:{{ service.command_args.port }}"
FULL = "{{ service.env.BASE }}/v1"
OTHER = "{{ services['open-webui'].ports[0].host }}"
""")
    env = render(cli, path)["env"]
    assert env["FULL"] == "http://llamacpp:8080/v1"
    assert env["OTHER"] == "3000"


def test_user_file_merges_tables_and_replaces_lists(cli, write_config):
    path = write_config("""
[services.llamacpp]
network_aliases = ["llm"]
[services.llamacpp.command_args]
ctx_size = 8192
""")
    data = render(cli, path)
    assert data["aliases"] == ["llm"]
    cmd = data["command"]
    assert cmd[cmd.index("--ctx-size") + 1] == "8192"
    assert "--no-webui" in cmd  # untouched keys of the merged table survive


def test_multiple_llamacpp_instances_get_deterministic_ports(cli, write_config):
    path = write_config("""
[services.llamacpp-ui]
enabled = true
[services.fast]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
default_model = "a.gguf"
ports = [{ container = 8080 }]
""")
    ports = {s: render(cli, path, s)["ports"][0]["host"] for s in ("llamacpp", "llamacpp-ui", "fast")}
    assert ports == {"llamacpp": 8080, "llamacpp-ui": 8081, "fast": 8082}
    again = {s: render(cli, path, s)["ports"][0]["host"] for s in ("llamacpp", "llamacpp-ui", "fast")}
    assert again == ports
    fast = render(cli, path, "fast")
    assert {"source": "airpods_llamacpp_models", "target": "/models", "mode": "ro"} in fast["volumes"]
    assert fast["url"] == "http://127.0.0.1:8082/v1"


def test_open_webui_is_wired_to_every_llamacpp_and_ollama(cli, write_config):
    path = write_config("""
[services.ollama]
enabled = true
[services.second]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
default_model = "b.gguf"
network_aliases = ["second"]
ports = [{ container = 8080 }]
""")
    data = render(cli, path, "open-webui", "--show-secrets")
    env = data["env"]
    assert env["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1;http://second:8080/v1"
    keys = env["OPENAI_API_KEYS"].split(";")
    assert len(keys) == 2 and all(len(k) >= 32 for k in keys)
    assert env["OLLAMA_BASE_URL"] == "http://ollama:11434" and env["ENABLE_OLLAMA_API"] == "true"
    assert env["ENABLE_PERSISTENT_CONFIG"] == "false" and len(env["WEBUI_SECRET_KEY"]) >= 32
    assert set(data["depends_on"]) == {"llamacpp", "second", "ollama"}
    llama_key = render(cli, path, "llamacpp", "--show-secrets")["env"]["LLAMA_API_KEY"]
    assert keys[0] == llama_key


def test_user_env_wins_over_wiring(cli, write_config):
    path = write_config('[services.open-webui.env]\nOPENAI_API_BASE_URLS = "http://elsewhere/v1"\n')
    assert render(cli, path, "open-webui")["env"]["OPENAI_API_BASE_URLS"] == "http://elsewhere/v1"


def test_disabled_backend_is_not_wired(cli, write_config):
    path = write_config("[services.llamacpp]\nenabled = false\n")
    env = render(cli, path, "open-webui")["env"]
    assert env["OPENAI_API_BASE_URLS"] == "" and env["ENABLE_OPENAI_API"] == "false"


def test_gpu_devices_come_from_the_probe():
    from airpods.config.loader import load_raw, validate
    from airpods.plan.resolve import Overrides, resolve
    from airpods.secrets import SecretStore

    config = validate(load_raw("/dev/null"))
    rocm = (ProbeResult("nvidia", None, "none"),
            ProbeResult("rocm", "rocm", "kfd", devices=("/dev/kfd", "/dev/dri")))
    specs = resolve(config, rocm, Overrides(), SecretStore(__import__("pathlib").Path("/nonexistent"), create=False))
    assert specs["llamacpp"].variant == "rocm" and specs["llamacpp"].devices == ("/dev/kfd", "/dev/dri")
    assert specs["llamacpp"].image.endswith(":server-rocm")
    assert specs["open-webui"].devices == ()  # gpu.enabled = false

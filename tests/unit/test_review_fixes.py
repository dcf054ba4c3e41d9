"""Defects an independent review found, each through the CLI (or the orchestrator) against the
in-memory runtime, whose volumes are real directories and which restarts containers like a
restart policy does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airpods.errors import ServiceExited
from airpods.orchestrate.events import Silent
from airpods.orchestrate.start import start
from airpods.plan.spec import HealthSpec, PortSpec
from tests.gguf_builder import llama_like, write_gguf
from tests.podman_env import free_port
from tests.unit.builders import spec

F16 = 1
MODELS = "airpods_llamacpp_models"
LLAMA = "ghcr.io/ggml-org/llama.cpp:server"


def model(fake, name: str, layers: int = 30, width: int = 80_000) -> Path:
    fake.ensure_volume(MODELS)
    kv = llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192)
    return write_gguf(Path(fake.volume_path(MODELS)) / name, kv, [("w", F16, [576, width])])


ROUTER = """
[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
[services.r]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{image}" }}
ports = [{{ host = {port}, container = 8080 }}]
command_args = {{ ctx_size = 4096 }}
[services.r.models.small]
file = "small.gguf"
[services.r.models.big]
file = "big.gguf"
"""


def test_models_fit_json_is_the_commands_own_output(fake, cli, write_config):
    model(fake, "m.gguf")
    result = cli("--config", write_config(""), "models", "fit", "m.gguf", "--ctx", "2048", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert {"model", "ctx", "parallel", "weights", "kv_cache", "compute", "total", "available", "fits",
            "max_ctx"} <= set(data)
    assert data["model"] == "m.gguf" and data["ctx"] == 2048 and data["total"] > data["weights"] > 0


def test_models_fit_for_a_router_takes_the_model_and_ctx_asked_for(fake, cli, write_config):
    model(fake, "small.gguf", layers=2, width=1000)
    model(fake, "big.gguf", layers=30)
    path = write_config(ROUTER.format(image=LLAMA, port=free_port()))
    result = cli("--config", path, "models", "fit", "big.gguf", "--ctx", "2048", "--service", "r", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert data["model"] == "big.gguf" and data["ctx"] == 2048
    listed = cli("--config", path, "models", "list", "--service", "r")
    assert "ctx 4096" in listed.err, listed.text  # the router's ctx, not the models' trained 8192


def test_a_gguf_cut_inside_a_small_array_is_named_not_a_crash(fake, cli, write_config):
    path = model(fake, "cut.gguf")
    kv = {**llama_like("llama", 4, 64, 2, 2, 128, 100, 512), "llama.per_layer": [1, 2, 3, 4, 5, 6, 7, 8]}
    write_gguf(path, kv, [("w", F16, [64, 64])])
    raw = path.read_bytes()
    cut = raw.index(b"llama.per_layer") + len(b"llama.per_layer") + 4 + 8 + 8  # inside the 8 values
    path.write_bytes(raw[:cut] + b"\0" * 3)  # still > 24 bytes, ends mid-array
    config = write_config("")
    listed = cli("--config", config, "models", "list")
    assert listed.code == 0 and "cut.gguf" in listed.out, listed.text
    fit = cli("--config", config, "models", "fit", "cut.gguf")
    assert fit.code == 2 and "cut.gguf" in fit.err and "Traceback" not in fit.text, fit.text


def test_start_refuses_over_budget_through_the_cli_and_creates_nothing(fake, cli, write_config):
    model(fake, "m.gguf", layers=30)
    fake.images.add(LLAMA)
    path = write_config('[services.llamacpp]\ndefault_model = "m.gguf"\nresources = { memory = "64m" }\n'
                        '[services.open-webui]\nenabled = false\n')
    result = cli("--config", path, "start", "llamacpp")
    assert result.code == 2 and "nothing was created" in result.err, result.text
    assert fake.pods == {} and fake.containers == {}


def test_a_crash_is_reported_at_once_while_a_sibling_still_waits(fake):
    fake.images.update({"localhost/test/a:1", "localhost/test/b:1"})
    crash = spec("a")
    slow = spec("b", ports=(PortSpec(free_port(), 8080),), health=HealthSpec("/health", (200, 299), 300.0))
    fake.exit_on_start["a-0"] = 2
    began = time.monotonic()
    with pytest.raises(ServiceExited) as err:
        start(fake, {"a": crash, "b": slow}, ["a", "b"], Silent(), network="airpods", models_volume=MODELS)
    assert "service 'a' exited during startup (exit code 2)" in err.value.message
    assert time.monotonic() - began < 10


def test_sigkill_from_airpods_stop_is_a_stop_and_from_the_kernel_a_crash(fake, cli, write_config):
    from dataclasses import replace

    fake.images.add("localhost/test/web:1")
    path = write_config(f'[services.web]\nimage = "localhost/test/web:1"\ncontainer = "web-0"\n'
                        f'ports = [{{ host = {free_port()}, container = 80 }}]\n'
                        '[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n')
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    killed = fake.containers["web-0"]
    fake.containers["web-0"] = replace(killed, status="exited", exit_code=137)  # the kernel's SIGKILL
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["state"] == "exited" and row["exit_code"] == 137
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    assert cli("--config", path, "stop", "--timeout", "0").code == 0
    fake.containers["web-0"] = replace(fake.containers["web-0"], status="exited", exit_code=137)
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["state"] == "stopped"


def test_a_stop_during_startup_is_not_called_out_of_memory(fake, tmp_path):
    fake.images.add("localhost/test/a:1")
    a = spec("a", health=HealthSpec("/health", (200, 299), 30.0))
    fake.exit_on_start["a-0"] = 137
    with pytest.raises(ServiceExited) as err:
        start(fake, {"a": a}, ["a"], Silent(), network="airpods", models_volume=MODELS,
              stops=lambda: {"a-0": time.time()})
    assert "was stopped during startup" in err.value.message and not err.value.out_of_memory


def test_status_keeps_an_out_of_memory_failure_when_the_restart_policy_brought_it_back(fake, cli, write_config):
    model(fake, "m.gguf", layers=30)
    fake.images.add(LLAMA)
    path = write_config('[services.llamacpp]\ndefault_model = "m.gguf"\nresources = { memory = "64m" }\n'
                        'memory_check = "warn"\ncontainer = "llamacpp-0"\n[services.open-webui]\nenabled = false\n')
    fake.oom_on_start.add("llamacpp-0")
    fake.restart_on_exit.add("llamacpp-0")
    fake.stop_pod = lambda name, timeout: None  # the restart policy wins every stop race
    result = cli("--config", path, "start", "llamacpp", "--timeout", "5")
    assert result.code == 1 and "ran out of memory" in result.err, result.text
    [row] = [r for r in json.loads(cli("--config", path, "status", "--json").out) if r["service"] == "llamacpp"]
    assert row["last_failure"] and row["last_failure"]["reason"] == "out of memory"


def test_the_run_shape_is_typed_on_the_spec_and_sees_raw_args(cli, write_config):
    from airpods.stack import Stack

    path = write_config('[services.llamacpp]\nargs = ["--ctx-size=8192", "-np", "2"]\n')
    spec = Stack(config_path=path).specs(create_secrets=False)["llamacpp"]
    assert spec.llama is not None and spec.llama.shape.ctx == 8192 and spec.llama.shape.parallel == 2
    assert spec.llama.model_in_volume == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.labels["io.airpods.run-shape"].startswith("ctx=8192,parallel=2")


def test_models_list_reads_architecture_and_quantization_from_the_one_header_reader(fake, cli, write_config):
    fake.ensure_volume(MODELS)
    kv = {**llama_like("qwen2", 2, 64, 2, 2, 128, 100, 512), "general.file_type": 15, "general.name": "Tiny"}
    write_gguf(Path(fake.volume_path(MODELS)) / "tiny.gguf", kv, [("w", F16, [64, 64])])
    [entry] = json.loads(cli("--config", write_config(""), "models", "list", "--json").out)
    assert (entry["architecture"], entry["quantization"]) == ("qwen2", "Q4_K_M")


def test_a_pod_start_failure_shows_the_oci_runtimes_own_message():
    from airpods.runtime.podman_wire import pod_start_errors

    body = json.dumps({"Id": "abc", "Errs": [
        "starting container 1a: internal libpod error",
        "runc create failed: unable to start container process: error during container init: error reopening "
        "/dev/null inside container: open /dev/null: operation not permitted: OCI permission denied"]}).encode()
    errors = pod_start_errors(body)
    assert errors[0].startswith("runc create failed") and "operation not permitted" in errors[0]
    assert pod_start_errors(b"") == [] and pod_start_errors(b"not json") == []


def test_a_port_someone_else_holds_is_named_with_who_to_ask():
    from airpods.runtime.podman_wire import OCI_HINT, start_refused

    held = ["starting container 5853: cannot listen on the TCP port: listen tcp4 127.0.0.1:8080: bind: address "
            "already in use", "starting container b4f7: a dependency of container b4f7 failed to start"]
    message, hint = start_refused("llamacpp-0", held)
    assert message == "start container llamacpp-0: host port 127.0.0.1:8080 is held by another process"
    assert "ss -ltnp 'sport = :8080'" in hint and "podman system service" in hint
    other = start_refused("x-0", ["runc create failed: error reopening /dev/null"])
    assert other == ("start container x-0: the OCI runtime refused: runc create failed: error reopening /dev/null",
                     OCI_HINT)


def test_export_with_keys_over_an_existing_readable_file_leaves_it_0600(cli, write_config, tmp_path):
    import os
    import stat

    out = tmp_path / "stack.yaml"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    result = cli("--config", write_config(""), "export", "kube", "--show-secrets", "-o", str(out))
    assert result.code == 0, result.text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "kind: Secret" in out.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stack.yaml")]  # no temporary left


def test_export_podman_creates_the_key_file_for_a_key_written_in_the_config(cli, write_config, isolated):
    import stat

    path = write_config('[services.llamacpp]\napi_key = "sk-written-in-the-config-0123456789"\n'
                        '[services.open-webui]\nenabled = false\n')
    result = cli("--config", path, "export", "kube", "llamacpp", "--target", "podman")
    assert result.code == 0, result.text
    key_file = isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key.config"
    assert key_file.read_text().strip() == "sk-written-in-the-config-0123456789"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in result.out and "sk-written" not in result.out

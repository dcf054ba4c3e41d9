"""The GPU plan through the CLI, with a fake nvidia-smi (an inventory of two GPUs), a fake CDI
spec with per-GPU names and the in-memory runtime: render, models fit, doctor, status, start
(the container gets only its GPU), the VRAM refusal, pins, user flags and gpu_plan = "off"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gguf_builder import llama_like, write_gguf
from tests.podman_env import free_port
from tests.unit.builders import fake_nvidia

F16 = 1
MODELS = "airpods_llamacpp_models"
IMAGE = "localhost/test/llama-cuda:1"


def model(fake, name: str, layers: int, width: int) -> None:
    """A llama-shaped model: `layers` blocks of 576 x width F16, plus embeddings and a head."""
    fake.ensure_volume(MODELS)
    tensors = [("token_embd.weight", F16, [576, 49152]), ("output.weight", F16, [576, 49152])]
    tensors += [(f"blk.{i}.ffn_up.weight", F16, [576, width]) for i in range(layers)]
    write_gguf(Path(fake.volume_path(MODELS)) / name, llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192),
               tensors)


def config(write_config, extra: str = "", args: str = "", runtime: str = "") -> str:
    return write_config(f"""
[runtime]
{runtime}
[services.open-webui]
enabled = false
[services.llamacpp]
images = {{ cpu = "ghcr.io/ggml-org/llama.cpp:server", cuda = "{IMAGE}" }}
default_model = "m.gguf"
ports = [{{ host = {free_port()}, container = 8080 }}]
{extra}
[services.llamacpp.command_args]
ctx_size = 2048
{args}
""")


@pytest.fixture
def two_gpus(isolated, monkeypatch, fake):
    fake_nvidia(isolated, monkeypatch, [("Fake 8GB", 8192, 8000), ("Fake 24GB", 24576, 24000)])
    fake.images.add(IMAGE)
    return fake


def render(cli, path: str) -> dict:
    result = cli("--config", path, "config", "render", "llamacpp", "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_a_model_that_fits_the_smaller_gpu_goes_there_alone(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)  # ~3 GiB
    path = config(write_config)
    data = render(cli, path)
    assert data["gpus"] == [0] and data["gpu_layers"] == 30 and "fits on GPU 0" in data["gpu_plan"]
    assert data["devices"] == ["nvidia.com/gpu=0"]
    cmd = data["command"]
    assert cmd[cmd.index("--n-gpu-layers") + 1] == "31" and "--tensor-split" not in cmd
    assert data["vram"]["0"] > 3 << 30
    started = cli("--config", path, "start", "llamacpp", "--no-wait")
    assert started.code == 0, started.text
    llama = next(s for s in two_gpus.specs.values() if s.name == "llamacpp")
    assert llama.devices == ("nvidia.com/gpu=0",)  # the container sees GPU 0 alone
    [row] = [r for r in json.loads(cli("--config", path, "status", "--json").out) if r["service"] == "llamacpp"]
    assert row["gpus"] == [0] and row["gpu_layers"] == 30 and row["gpu_plan"]
    assert "GPU 0 · 30/30 layers" in cli("--config", path, "status").out


def test_models_fit_json_adds_the_gpus(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)
    result = cli("--config", config(write_config), "models", "fit", "m.gguf", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert {"model", "total", "available", "fits"} <= set(data)
    [gpu] = data["gpus"]
    assert gpu["index"] == 0 and gpu["name"] == "Fake 8GB" and gpu["gpu_layers"] == 30
    assert gpu["vram_needed"] > 3 << 30 and gpu["vram_free"] == 8000 << 20


def test_a_model_larger_than_both_is_split_then_partly_offloaded(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=40, width=600_000)  # ~26 GiB: no single GPU holds it
    data = render(cli, config(write_config))
    assert data["gpus"] == [0, 1] and data["gpu_layers"] == 40
    cmd = data["command"]
    assert cmd[cmd.index("--split-mode") + 1] == "layer" and "--tensor-split" in cmd
    assert data["devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    model(two_gpus, "m.gguf", layers=40, width=1_200_000)  # ~53 GiB: part of it stays in RAM
    data = render(cli, config(write_config))
    assert 0 < data["gpu_layers"] < 40 and "partial offload" in data["gpu_plan"]


def test_doctor_shows_the_gpu_table_with_the_services_the_plan_puts_there(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)
    result = cli("--config", config(write_config), "doctor", "--json")
    data = json.loads(result.out)
    assert [g["name"] for g in data["gpus"]] == ["Fake 8GB", "Fake 24GB"]
    assert data["gpus"][0]["services"] == ["llamacpp"] and data["gpus"][1]["services"] == []
    text = cli("--config", config(write_config), "doctor").text
    assert "Fake 24GB" in text and "GPU 0 · 30/30 layers" in text


def test_the_plan_takes_only_what_others_leave_and_every_view_agrees(isolated, monkeypatch, fake, cli,
                                                                      write_config):
    """The issue's case: one 8192 MiB GPU with 8000 MiB free (a display server holds the rest), a
    12.6 GiB F16 model. The plan used to put 17 layers there (8051 MiB, against the total) while
    `models fit` said it did not fit. Now render, fit and start agree, and the plan fits."""
    fake_nvidia(isolated, monkeypatch, [("Desk 8GB", 8192, 8000)])
    fake.images.add(IMAGE)
    model(fake, "m.gguf", layers=30, width=380_000)  # ~12.6 GiB of F16
    path = config(write_config)
    data = render(cli, path)
    assert 0 < data["gpu_layers"] < 30 and "partial offload" in data["gpu_plan"]
    assert data["vram"]["0"] <= 8000 << 20, data["vram"]
    fit = json.loads(cli("--config", path, "models", "fit", "m.gguf", "--json").out)
    [row] = fit["gpus"]
    assert row["fits"] is True and row["vram_needed"] == data["vram"]["0"] and row["vram_free"] == 8000 << 20
    assert row["gpu_layers"] == data["gpu_layers"]
    assert fit["kv_cache"] > 0 and fit["compute"] > 0  # the layers left on the CPU keep their KV cache in RAM
    started = cli("--config", path, "start", "llamacpp", "--no-wait")
    assert started.code == 0, started.text
    [spec] = fake.specs.values()
    assert spec.command == tuple(data["command"]) and spec.labels["io.airpods.vram"] == f"0:{data['vram']['0']}"
    again = render(cli, path)  # while it runs, what it holds is airpods' own: the same plan
    fake_nvidia(isolated, monkeypatch, [("Desk 8GB", 8192, 8000 - (data["vram"]["0"] >> 20))])
    assert render(cli, path)["gpu_layers"] == again["gpu_layers"] == data["gpu_layers"]


def test_start_refuses_the_users_own_layers_when_the_gpu_has_not_the_free_memory(isolated, monkeypatch, fake, cli,
                                                                                 write_config):
    fake_nvidia(isolated, monkeypatch, [("Busy 8GB", 8192, 1000)])  # something else holds most of it
    fake.images.add(IMAGE)
    model(fake, "m.gguf", layers=30, width=90_000)
    assert 0 < render(cli, config(write_config))["gpu_layers"] < 30  # planned: what fits in the 1000 MiB
    mine = config(write_config, args="n_gpu_layers = 999")  # the user's own: checked, not planned
    result = cli("--config", mine, "start", "llamacpp")
    assert result.code == 2, result.text
    assert "1000 MiB is" in result.err and "nothing was created" in result.err
    assert fake.pods == {} and fake.containers == {}
    forced = cli("--config", mine, "start", "llamacpp", "--force", "--no-wait")
    assert forced.code == 0 and "starting anyway" in forced.err


def test_a_pin_to_a_gpu_that_does_not_exist_is_a_config_error(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)
    result = cli("--config", config(write_config, extra="gpu = { devices = [3] }"), "config", "render", "llamacpp")
    assert result.code == 2 and "services.llamacpp.gpu.devices: no GPU '3'" in result.err
    pinned = render(cli, config(write_config, extra='gpu = { devices = ["GPU-0001"] }'))
    assert pinned["gpus"] == [1] and pinned["devices"] == ["nvidia.com/gpu=1"]


def test_user_gpu_flags_are_kept_and_gpu_plan_off_is_todays_argv(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)
    mine = render(cli, config(write_config, args="n_gpu_layers = 12"))
    assert mine["command"][mine["command"].index("--n-gpu-layers") + 1] == "12"
    assert mine["gpu_layers"] is None and "checked, not planned" in mine["gpu_plan"]
    off = render(cli, config(write_config, runtime='gpu_plan = "off"'))
    assert off["devices"] == ["nvidia.com/gpu=all"] and off["gpus"] == [] and off["gpu_plan"] == ""
    assert off["command"][off["command"].index("--n-gpu-layers") + 1] == "999"


def test_a_cpu_only_machine_has_no_gpu_plan(fake, cli, write_config):
    model(fake, "m.gguf", layers=30, width=90_000)
    data = render(cli, config(write_config))
    assert data["variant"] == "cpu" and data["gpus"] == [] and data["gpu_layers"] is None
    assert data["command"][data["command"].index("--n-gpu-layers") + 1] == "0"


def test_gpu_memory_forces_a_partial_offload(two_gpus, cli, write_config):
    model(two_gpus, "m.gguf", layers=30, width=90_000)  # ~3 GiB
    data = render(cli, config(write_config, extra='gpu = { memory = "1g" }'))
    assert 0 < data["gpu_layers"] < 30 and "partial offload" in data["gpu_plan"]
    assert sum(data["vram"].values()) <= 1 << 30

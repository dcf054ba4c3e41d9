"""`airpods models fit` and `models list` through the CLI against the in-memory runtime, whose
volumes are real directories: their own output, a router's model, a header cut short."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gguf_builder import llama_like, write_gguf
from tests.podman_env import free_port
from tests.unit.builders import F16, LLAMA, MODELS, TWO_MODEL_ROUTER, model_in_volume


def test_models_fit_json_is_the_commands_own_output(fake, cli, write_config):
    model_in_volume(fake, "m.gguf")
    result = cli("--config", write_config(""), "models", "fit", "m.gguf", "--ctx", "2048", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert {"model", "ctx", "parallel", "weights", "kv_cache", "compute", "total", "available", "fits",
            "max_ctx"} <= set(data)
    assert data["model"] == "m.gguf" and data["ctx"] == 2048 and data["total"] > data["weights"] > 0


def test_models_fit_for_a_router_takes_the_model_and_ctx_asked_for(fake, cli, write_config):
    model_in_volume(fake, "small.gguf", layers=2, width=1000)
    model_in_volume(fake, "big.gguf", layers=30)
    path = write_config(TWO_MODEL_ROUTER.format(image=LLAMA, port=free_port()))
    result = cli("--config", path, "models", "fit", "big.gguf", "--ctx", "2048", "--service", "r", "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert data["model"] == "big.gguf" and data["ctx"] == 2048
    listed = cli("--config", path, "models", "list", "--service", "r")
    assert "ctx 4096" in listed.err, listed.text  # the router's ctx, not the models' trained 8192


def test_a_gguf_cut_inside_a_small_array_is_named_not_a_crash(fake, cli, write_config):
    path = model_in_volume(fake, "cut.gguf")
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


def test_models_list_reads_architecture_and_quantization_from_the_one_header_reader(fake, cli, write_config):
    fake.ensure_volume(MODELS)
    kv = {**llama_like("qwen2", 2, 64, 2, 2, 128, 100, 512), "general.file_type": 15, "general.name": "Tiny"}
    write_gguf(Path(fake.volume_path(MODELS)) / "tiny.gguf", kv, [("w", F16, [64, 64])])
    [entry] = json.loads(cli("--config", write_config(""), "models", "list", "--json").out)
    assert (entry["architecture"], entry["quantization"]) == ("qwen2", "Q4_K_M")

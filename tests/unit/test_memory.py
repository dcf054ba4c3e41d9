"""The memory estimate against GGUF headers built here (llama, gemma with sliding windows, MoE,
a recurrent model), the header reader, and the preflight budget against the fake runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airpods.errors import UsageError
from airpods.models.gguf_header import ArrayLength, read_header
from airpods.orchestrate.memory_check import assess, budget, check_memory
from airpods.plan.memory import (
    MIB,
    OVERHEAD,
    RunShape,
    estimate,
    facts_from_header,
    max_ctx,
    parse_size,
    shape_from_argv,
)
from tests.gguf_builder import llama_like, write_gguf
from tests.unit.builders import DiskRuntime

Q4_K, F32, F16 = 12, 0, 1


def header(tmp_path: Path, name: str, kv: dict, tensors: list) -> tuple:
    h = read_header(write_gguf(tmp_path / name, kv, tensors))
    return h, facts_from_header(h.kv, h.tensor_bytes)


def test_header_reader_keeps_per_layer_arrays_and_skips_a_150k_vocabulary(tmp_path):
    vocab = [f"tok{i}" for i in range(150_000)]
    kv = {**llama_like("qwen2", 4, 256, 8, 2, 512, 150_000, 32768), "tokenizer.ggml.tokens": vocab,
          "qwen2.attention.head_count_kv": [2, 2, 4, 4]}
    h, facts = header(tmp_path, "big-vocab.gguf", kv, [("tok_embd", Q4_K, [256, 150_000])])
    assert h.kv["tokenizer.ggml.tokens"] == ArrayLength(150_000)
    assert facts.n_head_kv == (2, 2, 4, 4) and facts.n_vocab == 150_000
    assert h.tensor_bytes == 256 * 150_000 // 256 * 144  # Q4_K: 144 bytes per 256 values
    assert h.tensor_bytes == h.file_size - h.data_offset


def test_llama_kv_cache_is_layers_ctx_heads_and_lengths(tmp_path):
    # SmolLM2-135M's shape: 30 layers, 576 wide, 9 heads, 3 KV heads (head dim 64).
    _, f = header(tmp_path, "llama.gguf", llama_like("llama", 30, 576, 9, 3, 1536, 49152, 8192),
                  [("w", F16, [576, 1000])])
    e = estimate(f, RunShape(8192))
    assert e.kv_cache == 8192 * 30 * 3 * (64 + 64) * 2 == 180 * MIB  # what llama-server reports
    assert e.weights == 576 * 1000 * 2 and e.overhead == OVERHEAD
    assert estimate(f, RunShape(8192, cache_k="q8_0")).kv_cache == pytest.approx((47.8125 + 90) * MIB)
    assert abs(estimate(f, RunShape(2048)).compute - 15.70 * MIB) < 0.1 * MIB  # llama-server: 15.51 + 0.19
    assert estimate(f, RunShape(0)).ctx == 8192  # 0 = the trained context
    assert "llama.attention.key_length" in f.defaults_used


def test_gemma_sliding_window_layers_hold_only_the_window(tmp_path):
    kv = llama_like("gemma3", 12, 640, 4, 1, 2048, 262144, 32768,
                    **{"attention.key_length": 256, "attention.value_length": 256, "attention.sliding_window": 512})
    _, f = header(tmp_path, "gemma3.gguf", kv, [("w", Q4_K, [640, 256])])
    assert f.swa_layers == tuple((i + 1) % 6 != 0 for i in range(12))  # 5 local : 1 global
    e = estimate(f, RunShape(32768))
    per_cell = 1 * (256 + 256) * 2
    swa_cells = 1024  # window 512 × 1 slot + ubatch 512, padded to 256
    assert e.kv_cache == 2 * 32768 * per_cell + 10 * swa_cells * per_cell
    full = estimate(f.__class__(**{**f.__dict__, "sliding_window": 0, "swa_layers": ()}), RunShape(32768))
    assert e.kv_cache < full.kv_cache / 4


def test_moe_weights_are_all_experts_and_compute_uses_the_active_ones(tmp_path):
    kv = llama_like("qwen3moe", 4, 512, 8, 4, 3072, 1000, 4096,
                    **{"expert_feed_forward_length": 256, "expert_count": 8, "expert_used_count": 2})
    experts = [(f"blk.{i}.ffn_up_exps", Q4_K, [512, 256, 8]) for i in range(4)]
    h, f = header(tmp_path, "moe.gguf", kv, experts)
    assert f.weights == 4 * 512 * 256 * 8 // 256 * 144 and f.n_ff == 512  # 2 active × 256
    assert estimate(f, RunShape(4096)).weights == h.tensor_bytes


def test_recurrent_layers_hold_a_state_per_slot_not_per_token(tmp_path):
    kv = {"general.architecture": "mamba", "mamba.block_count": 24, "mamba.embedding_length": 768,
          "mamba.context_length": 1048576, "mamba.ssm.conv_kernel": 4, "mamba.ssm.inner_size": 1536,
          "mamba.ssm.state_size": 16, "mamba.vocab_size": 50280}
    _, f = header(tmp_path, "mamba.gguf", kv, [("w", F32, [768, 10])])
    state = 4 * (3 * (1536 + 2 * 16) + 16 * 1536)
    assert f.recurrent_state == state and set(f.n_head_kv) == {0}
    assert estimate(f, RunShape(4096, parallel=2)).kv_cache == 24 * state * 2
    assert estimate(f, RunShape(65536, parallel=2)).kv_cache == 24 * state * 2  # no growth with ctx


def test_argv_shape_and_max_ctx(tmp_path):
    shape = shape_from_argv(["--model", "/models/x.gguf", "--ctx-size", "16384", "-np", "4", "-ctk", "q8_0",
                             "--flash-attn", "off"])
    assert shape == RunShape(16384, 4, "q8_0", "f16", 512, False)
    _, f = header(tmp_path, "m.gguf", llama_like("llama", 30, 576, 9, 3, 1536, 49152, 8192), [("w", F16, [576, 9])])
    limit = 150 * MIB
    best = max_ctx(f, RunShape(16384), limit)
    assert 0 < best < 8192 and best % 256 == 0
    assert estimate(f, RunShape(best)).total <= limit < estimate(f, RunShape(best + 256)).total
    assert max_ctx(f, RunShape(16384), 1 << 40) == 8192  # never past the trained context
    assert max_ctx(f, RunShape(16384), 10 * MIB) == 0
    assert parse_size("256m") == 256 * MIB and parse_size("1.5g") == int(1.5 * 1024 * MIB)


# preflight -------------------------------------------------------------------------------------
def _llama_spec(name: str, ctx: int, memory: str | None = None, check: str = "refuse"):
    from airpods.plan.spec import VolumeSpec
    from tests.unit.builders import spec

    return spec(name, kind="llamacpp", memory=memory, memory_check=check,
                volumes=(VolumeSpec("models", "/models", "ro"),),
                command=("--model", "/models/m.gguf", "--ctx-size", str(ctx), "-np", "1"))


@pytest.fixture
def rt(tmp_path):
    runtime = DiskRuntime(root=tmp_path / "volumes", images={f"localhost/test/{n}:1" for n in ("a", "b")})
    runtime.ensure_volume("models")
    kv = llama_like("llama", 30, 576, 9, 3, 1536, 49152, 8192)
    write_gguf(Path(runtime.volume_path("models")) / "m.gguf", kv, [("w", F16, [576, 80_000])])
    return runtime


def test_resources_memory_refuses_with_both_numbers_and_the_ctx_that_fits(rt):
    a = _llama_spec("a", 16384, memory="256m")
    with pytest.raises(UsageError) as err:
        check_memory(rt, {"a": a}, [a], models_volume="models", budget_setting="auto", memory_total=1 << 40,
                     memory_source="MemTotal")
    text = err.value.message + "\n".join(err.value.details) + (err.value.hint or "")
    assert err.value.exit_code == 2 and "256 MiB" in text and "ctx_size =" in text and "--force" in text
    reports, warnings = check_memory(rt, {"a": a}, [a], models_volume="models", budget_setting="auto",
                                     memory_total=1 << 40, memory_source="MemTotal", force=True)
    assert not reports["a"].fits and "starting anyway" in warnings[0]


def test_budget_counts_services_already_running(rt):
    a, b = _llama_spec("a", 4096), _llama_spec("b", 4096)
    one = assess(a, *_facts(rt), budget_bytes=None, budget_why="", others=[]).estimate.total
    total = int((one + 10 * MIB) / 0.8)  # "auto" gives 80%: just above one instance
    specs = {"a": a, "b": b}
    check_memory(rt, specs, [a], models_volume="models", budget_setting="auto", memory_total=total,
                 memory_source="test")
    rt.ensure_network("airpods")
    rt.create_pod(a)
    rt.create_container(a)
    rt.start_container("a-0")
    rt.usage["a-0"] = one  # measured
    with pytest.raises(UsageError) as err:
        check_memory(rt, specs, [b], models_volume="models", budget_setting="auto", memory_total=total,
                     memory_source="test")
    assert "stop a" in (err.value.hint or "") and "measured" in "\n".join(err.value.details)
    rt.stop_pod("a", 1)
    reports, _ = check_memory(rt, specs, [b], models_volume="models", budget_setting="auto", memory_total=total,
                              memory_source="test")
    assert reports["b"].fits


def test_warn_mode_and_budget_off(rt):
    a = _llama_spec("a", 16384, memory="64m", check="warn")
    _, warnings = check_memory(rt, {"a": a}, [a], models_volume="models", budget_setting="auto",
                               memory_total=1 << 40, memory_source="MemTotal")
    assert warnings
    b = _llama_spec("b", 16384)
    reports, _ = check_memory(rt, {"b": b}, [b], models_volume="models", budget_setting="off", memory_total=1,
                              memory_source="x")
    assert reports["b"].available is None and reports["b"].fits
    assert budget("12g", 0, "")[0] == 12 << 30


def _facts(rt):
    from airpods.orchestrate.memory_check import model_facts

    return model_facts(Path(rt.volume_path("models")), "m.gguf"), "m.gguf"


def test_oom_kill_during_start_says_out_of_memory(rt):
    from airpods.errors import ServiceExited
    from airpods.orchestrate.events import Silent
    from airpods.orchestrate.start import start

    a = _llama_spec("a", 16384, memory="256m")
    rt.oom_on_start.add("a-0")
    with pytest.raises(ServiceExited) as err:
        start(rt, {"a": a}, ["a"], Silent(), network="airpods", models_volume="models",
              memory_check=lambda todo: check_memory(rt, {"a": a}, todo, models_volume="models",
                                                     budget_setting="auto", memory_total=1 << 40,
                                                     memory_source="x", force=True))
    assert err.value.out_of_memory and "ran out of memory" in err.value.message
    assert any("256 MiB" in line for line in err.value.details)


def test_models_fit_json_contract(cli, write_config):
    result = cli("--config", write_config(""), "models", "fit", "../x.gguf", "--json")
    assert result.code == 2 and "plain file name" in result.err
    keys = {"model", "ctx", "parallel", "weights", "kv_cache", "compute", "total", "available", "fits", "max_ctx"}
    from airpods.orchestrate.memory_check import FitReport
    from airpods.plan.memory import MemoryEstimate

    report = FitReport("s", "m.gguf", MemoryEstimate(1, 2, 3, 4, 4096, 1), 100, "x")
    assert keys <= set(report.to_json()) and json.dumps(report.to_json())


def test_gpu_variant_is_checked_against_free_vram(rt, tmp_path):
    import dataclasses

    from airpods.probes.memory import free_vram
    from tests.unit.builders import fake_smi

    bin_dir = tmp_path / "bin"
    fake_smi(bin_dir, output="120\n300")  # MiB free on two GPUs
    assert free_vram("cuda", str(bin_dir)) == [120 * MIB, 300 * MIB]
    assert free_vram("rocm", str(bin_dir)) is None and free_vram("cpu", str(bin_dir)) is None
    a = dataclasses.replace(_llama_spec("a", 8192), variant="cuda",
                            command=("--model", "/models/m.gguf", "--ctx-size", "8192", "--n-gpu-layers", "999"))
    with pytest.raises(UsageError) as err:  # ~320 MiB at ctx 8192: more than the best GPU's 300 MiB
        check_memory(rt, {"a": a}, [a], models_volume="models", budget_setting="off", memory_total=1 << 40,
                     memory_source="x", vram_for=lambda v: free_vram(v, str(bin_dir)))
    assert "free VRAM" in "\n".join(err.value.details)
    small = dataclasses.replace(a, command=("--model", "/models/m.gguf", "--ctx-size", "2048", "-ngl", "999"))
    reports, _ = check_memory(rt, {"a": small}, [small], models_volume="models", budget_setting="off",
                              memory_total=1, memory_source="x", vram_for=lambda v: free_vram(v, str(bin_dir)))
    assert reports["a"].available == 300 * MIB and reports["a"].fits
    cpu = dataclasses.replace(small, command=("--model", "/models/m.gguf", "--ctx-size", "2048", "-ngl", "0"))
    reports, _ = check_memory(rt, {"a": cpu}, [cpu], models_volume="models", budget_setting="off",
                              memory_total=1, memory_source="x", vram_for=lambda v: free_vram(v, str(bin_dir)))
    assert reports["a"].available is None  # no layers on the GPU: the (off) RAM budget applies


def test_rocm_free_vram_from_rocm_smi_csv(tmp_path):
    from airpods.probes.memory import free_vram

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "rocm-smi"
    smi.write_text("#!/bin/sh\necho 'device,VRAM Total Memory (B),VRAM Total Used Memory (B)'\n"
                   "echo 'card0,17163091968,1073741824'\necho 'card1,8573157376,8000000000'\n")
    smi.chmod(0o755)
    assert free_vram("rocm", str(bin_dir)) == [17163091968 - 1073741824, 8573157376 - 8000000000]


def test_embedding_model_declaring_another_pooling_needs_an_explicit_choice(rt):
    import dataclasses

    from airpods.orchestrate.preflight import check_pooling
    from airpods.plan.router import RouterModelSpec, RouterSpec

    kv = {**llama_like("bert", 4, 384, 6, 6, 1536, 30522, 512), "bert.pooling_type": 2}  # cls
    write_gguf(Path(rt.volume_path("models")) / "bge.gguf", kv, [("w", F16, [384, 10])])
    base = _llama_spec("r", 512)
    default = RouterModelSpec("embed", "bge.gguf", embeddings=True, pooling="mean", pooling_set=False)
    spec = dataclasses.replace(base, router=RouterSpec((default,)))
    with pytest.raises(UsageError) as err:
        check_pooling([spec], rt, "models")
    assert "declares pooling 'cls'" in err.value.message and 'pooling = "cls"' in (err.value.hint or "")
    chosen = dataclasses.replace(default, pooling="cls", pooling_set=True)
    check_pooling([dataclasses.replace(base, router=RouterSpec((chosen,)))], rt, "models")  # the user's word
    write_gguf(Path(rt.volume_path("models")) / "plain.gguf", llama_like("llama", 2, 64, 2, 2, 128, 100, 512),
               [("w", F16, [64, 10])])
    none = RouterModelSpec("e2", "plain.gguf", embeddings=True, pooling="mean")
    check_pooling([dataclasses.replace(base, router=RouterSpec((none,)))], rt, "models")  # declares none: mean

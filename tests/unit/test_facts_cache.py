"""Model header facts kept between commands: a second command reads no header, a changed file or
changed header code reads it again, a broken cache file is never an error."""

from __future__ import annotations

import os
import stat

import pytest

import airpods.models.gguf_header as gguf_header
from airpods.models import facts_cache
from airpods.models.facts_cache import FactsCache
from airpods.orchestrate.memory_check import _facts, model_facts
from tests.gguf_builder import llama_like, write_gguf

F16 = 1


@pytest.fixture
def reads(monkeypatch):
    """How many times a header was read (the in-process cache of a command cleared first)."""
    count = [0]
    real = gguf_header.read_model

    def counted(path):
        count[0] += 1
        return real(path)

    monkeypatch.setattr(gguf_header, "read_model", counted)
    _facts.cache_clear()
    yield count
    _facts.cache_clear()


def model(tmp_path, name="m.gguf", n_layer=30):
    vocab = [f"tok{i}" for i in range(5000)]
    kv = {**llama_like("llama", n_layer, 576, 9, 3, 1536, 5000, 8192), "tokenizer.ggml.tokens": vocab}
    (tmp_path / "volume").mkdir(exist_ok=True)
    return write_gguf(tmp_path / "volume" / name, kv, [("w", F16, [576, 1000])])


def next_command(path):
    """What a new airpods process sees: nothing in memory, the file on disk."""
    _facts.cache_clear()
    return FactsCache(path)


def test_a_second_command_reads_no_header(tmp_path, reads):
    model(tmp_path)
    root, kept = tmp_path / "volume", tmp_path / "cache" / "model-facts.json"
    first = model_facts(root, "m.gguf", next_command(kept))
    assert reads[0] == 1 and first is not None and first.n_layer == 30
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    second = model_facts(root, "m.gguf", next_command(kept))
    assert reads[0] == 1 and second == first  # from the file, equal field by field (tuples too)


def test_a_changed_model_or_header_code_is_read_again(tmp_path, reads, monkeypatch):
    path = model(tmp_path)
    root, kept = tmp_path / "volume", tmp_path / "cache" / "model-facts.json"
    model_facts(root, "m.gguf", next_command(kept))
    model(tmp_path, n_layer=12)  # the same name, another model
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert model_facts(root, "m.gguf", next_command(kept)).n_layer == 12 and reads[0] == 2
    monkeypatch.setattr(facts_cache, "_code_key", lambda: "facts/1/another-version")
    assert model_facts(root, "m.gguf", next_command(kept)).n_layer == 12 and reads[0] == 3


def test_a_broken_cache_file_is_read_past_and_replaced(tmp_path, reads):
    model(tmp_path)
    root, kept = tmp_path / "volume", tmp_path / "cache" / "model-facts.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{not json")
    assert model_facts(root, "m.gguf", next_command(kept)).n_layer == 30 and reads[0] == 1
    assert model_facts(root, "m.gguf", next_command(kept)) is not None and reads[0] == 1


def test_it_keeps_a_bounded_number_of_models(tmp_path, reads, monkeypatch):
    monkeypatch.setattr(facts_cache, "KEEP", 2)
    for name in ("a.gguf", "b.gguf", "c.gguf"):
        model(tmp_path, name)
    root, kept = tmp_path / "volume", tmp_path / "cache" / "model-facts.json"
    for name in ("a.gguf", "b.gguf", "c.gguf"):
        model_facts(root, name, next_command(kept))
    assert reads[0] == 3
    model_facts(root, "c.gguf", next_command(kept))
    assert reads[0] == 3  # kept
    model_facts(root, "a.gguf", next_command(kept))
    assert reads[0] == 4  # the oldest went


def test_the_memory_preflight_of_a_second_start_reads_no_header(tmp_path, reads):
    from airpods.orchestrate.memory_check import check_memory
    from airpods.plan.spec import VolumeSpec
    from tests.unit.builders import DiskRuntime, spec

    rt = DiskRuntime(root=tmp_path / "volumes")
    rt.ensure_volume("models")
    model(tmp_path)
    os.replace(tmp_path / "volume" / "m.gguf", os.path.join(rt.volume_path("models"), "m.gguf"))
    a = spec("a", kind="llamacpp", volumes=(VolumeSpec("models", "/models", "ro"),),
             command=("--model", "/models/m.gguf", "--ctx-size", "4096"))
    kept = tmp_path / "cache" / "model-facts.json"
    runs = [check_memory(rt, {"a": a}, [a], models_volume="models", budget_setting="auto", memory_total=1 << 40,
                         memory_source="test", kept=next_command(kept))[0]["a"] for _ in range(2)]
    assert reads[0] == 1 and runs[0].estimate == runs[1].estimate

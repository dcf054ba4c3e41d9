"""What a pull may claim and what it may print (security review, issue 25 items 2, 4 and 6; issue 29
item 3): the sha256 comes from the hub's listing, a file without one is never "verified" nor resumed
on trust, HF_TOKEN never reaches an error message, a paged listing is followed and a split model
with a part missing is refused before any byte. Against the hub stand-in, which counts bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airpods.models.gguf_header import read_header
from tests.gguf_builder import llama_like, write_gguf
from tests.hub_standin import serve
from tests.unit.builders import gguf, volume


@pytest.fixture
def hub(monkeypatch, tmp_path):
    a, b = gguf(tmp_path, "a", 15), gguf(tmp_path, "b", 7)
    stand_in, server = serve(monkeypatch, {
        "org/Tiny-GGUF": {"Tiny-Q4_K_M.gguf": a, "Tiny-Q8_0.gguf": b},
        "org/Gated-GGUF": {"g-Q4_K_M.gguf": a},
        "org/Split-GGUF": {f"big-Q4_K_M-0000{i}-of-00003.gguf": a for i in (1, 2, 3)},
        "org/Holed-GGUF": {f"big-Q4_K_M-0000{i}-of-00003.gguf": a for i in (1, 3)},
    })
    stand_in.gated = {"org/Gated-GGUF"}
    yield stand_in
    server.shutdown()


def manifest(fake) -> dict:
    return json.loads((volume(fake) / ".airpods-models.json").read_text())


def made_volume(hub, fake, cli, write_config) -> Path:
    assert cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q4_K_M").code == 0
    hub.served = 0
    return volume(fake)


@pytest.mark.parametrize("ref", ["org/Tiny-GGUF:Q8_0", "org/Tiny-GGUF/Tiny-Q8_0.gguf"])
def test_a_mirror_serving_other_bytes_without_an_etag_is_caught_by_the_listings_sha256(hub, fake, cli, write_config,
                                                                                        tmp_path, ref):
    other = gguf(tmp_path, "other", 7, layers=5)  # a valid GGUF, not the one the hub lists
    hub.mirror = {"Tiny-Q8_0.gguf": other}
    result = cli("--config", write_config(""), "models", "pull", ref)
    assert result.code == 1, result.text
    assert "sha256 mismatch" in result.err and "verified" not in result.err
    assert not (volume(fake) / "Tiny-Q8_0.gguf").exists()
    assert list(volume(fake).glob(".*.part")) == []


def test_with_no_published_sha256_the_pull_says_unverified_and_the_manifest_too(hub, fake, cli, write_config):
    hub.unhashed = {"Tiny-Q8_0.gguf"}
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q8_0")
    assert result.code == 0, result.text
    assert "sha256 verified" not in result.err and "not verified" in result.err
    assert manifest(fake)["Tiny-Q8_0.gguf"]["verified"] is False
    hashed = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q4_K_M")
    assert "(sha256 verified)" in hashed.err and manifest(fake)["Tiny-Q4_K_M.gguf"]["verified"] is True


def test_a_partial_file_is_not_resumed_when_nothing_can_check_it(hub, fake, cli, write_config):
    hub.unhashed = {"Tiny-Q8_0.gguf"}
    root = made_volume(hub, fake, cli, write_config)
    good = hub.repos["org/Tiny-GGUF"]["Tiny-Q8_0.gguf"]
    (root / ".Tiny-Q8_0.gguf.part").write_bytes(b"GGUF" + b"\xff" * 1000)  # someone else's start
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q8_0")
    assert result.code == 0, result.text
    assert (root / "Tiny-Q8_0.gguf").read_bytes() == good
    assert hub.served == len(good)  # the whole file again, not the rest after the stranger's bytes


def test_a_partial_file_is_resumed_when_the_listing_can_check_it(hub, fake, cli, write_config):
    root = made_volume(hub, fake, cli, write_config)
    good = hub.repos["org/Tiny-GGUF"]["Tiny-Q8_0.gguf"]
    (root / ".Tiny-Q8_0.gguf.part").write_bytes(good[:1000])
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q8_0")
    assert result.code == 0 and "(sha256 verified)" in result.err, result.text
    assert hub.served == len(good) - 1000 and (root / "Tiny-Q8_0.gguf").read_bytes() == good


@pytest.mark.parametrize("junk", ["\r", "\r\n", " ", "\n"])
def test_a_token_with_a_line_end_is_stripped_and_never_printed(hub, fake, cli, write_config, monkeypatch, junk):
    monkeypatch.setenv("HF_TOKEN", "hf_good" + junk)
    result = cli("--config", write_config(""), "models", "pull", "org/Gated-GGUF")
    assert result.code == 0, result.text
    assert "hf_good" not in result.text


def test_a_token_with_a_break_inside_is_a_usage_error_that_does_not_show_it(hub, fake, cli, write_config,
                                                                              monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretpart\rrest")
    for args in (["org/Gated-GGUF"], ["org/Gated-GGUF", "--list"], ["org/Gated-GGUF/g-Q4_K_M.gguf"]):
        result = cli("--config", write_config(""), "models", "pull", *args)
        assert result.code == 2 and "HF_TOKEN" in result.err, result.text
        assert "secretpart" not in result.text and "rest" not in result.text.replace("restore", "")
        assert "Traceback" not in result.text


def test_an_exception_holding_the_token_is_described_without_it():
    import requests

    from airpods.models.hub_http import describe

    for raw in ("hf_abcdef123456\r", "hf_abcdef123456"):
        exc = requests.exceptions.InvalidHeader(f"Invalid return character in header value: {('Bearer ' + raw)!r}")
        text = describe(exc, {"HF_TOKEN": raw})
        assert "abcdef" not in text and text.startswith("InvalidHeader")


def test_a_paged_listing_is_followed(hub, fake, cli, write_config):
    hub.page = 2  # the split's three parts are on two pages
    result = cli("--config", write_config(""), "models", "pull", "org/Split-GGUF:Q4_K_M")
    assert result.code == 0, result.text
    assert sorted(p.name for p in volume(fake).glob("*.gguf")) == [f"big-Q4_K_M-0000{i}-of-00003.gguf"
                                                                   for i in (1, 2, 3)]


def test_a_split_model_missing_a_part_is_refused_before_any_byte(hub, fake, cli, write_config):
    result = cli("--config", write_config(""), "models", "pull", "org/Holed-GGUF:Q4_K_M")
    assert result.code == 1, result.text
    assert "big-Q4_K_M-00002-of-00003.gguf" in result.err and "nothing was downloaded" in result.err
    assert hub.served == 0 and "airpods_llamacpp_models" not in fake.volumes  # nothing created


def big_header_gguf(tmp: Path, name: str, ftype: int) -> bytes:
    """A GGUF with a SmolLM2-sized vocabulary (49152 tokens + merges: a header of ~1.7 MiB), and a
    few MB of weights."""
    kv = {**llama_like("llama", 4, 576, 9, 3, 1536, 49152, 8192), "general.file_type": ftype,
          "tokenizer.ggml.tokens": [f"tk{i:07d}abc" for i in range(49152)],
          "tokenizer.ggml.merges": [f"m{i:05d} q{i % 10}" for i in range(48900)]}
    return write_gguf(tmp / name, kv, [(f"blk.{i}.w", 1, [576, 2000]) for i in range(4)]).read_bytes()


def test_list_reads_each_header_about_once(hub, fake, cli, write_config, tmp_path):
    files = {f"Big-{q}.gguf": big_header_gguf(tmp_path, q, t) for q, t in (("Q4_K_M", 15), ("Q8_0", 7), ("F16", 1))}
    hub.repos["org/Big-GGUF"] = files
    header_bytes = 0
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        header_bytes += read_header(tmp_path / name).data_offset
    assert 1.5 * 3 * 2**20 < header_bytes < 2.2 * 3 * 2**20  # the issue's case: ~1.7 MiB each
    result = cli("--config", write_config(""), "models", "pull", "org/Big-GGUF", "--list", "--json")
    assert result.code == 0, result.text
    assert len(json.loads(result.out)) == 3
    print(f"served {hub.served} for {header_bytes} header bytes: {hub.served / header_bytes:.3f}x")
    assert hub.served <= 1.2 * header_bytes, (hub.served, header_bytes)

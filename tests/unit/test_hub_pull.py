"""`airpods models pull ORG/REPO[:QUANT]` and `--list`, against a local stand-in of the hub's HTTP
API (the tree listing, resolve with HEAD and ranged GETs, a gated repo) and the in-memory runtime
with its volumes on disk. The stand-in counts the bytes it served."""

from __future__ import annotations

import json

import pytest

from tests.gguf_builder import llama_like, write_gguf
from tests.hub_standin import serve
from tests.unit.builders import gguf, volume

F16 = 1


@pytest.fixture
def hub(monkeypatch, tmp_path):
    q4, q8, f16 = gguf(tmp_path, "a", 15), gguf(tmp_path, "b", 7), gguf(tmp_path, "c", 1)
    stand_in, server = serve(monkeypatch, {
        "org/Tiny-GGUF": {"Tiny-Q4_K_M.gguf": q4, "Tiny-Q8_0.gguf": q8, "tiny-f16.gguf": f16, "README.md": b"# x"},
        "org/Only-GGUF": {"only.Q8_0.gguf": q8},
        "org/Twins-GGUF": {"a/m-Q4_K_M.gguf": q4, "b/n-Q4_K_M.gguf": q4},
        "org/Empty": {"README.md": b"nothing"},
        "org/Gated-GGUF": {"g-Q4_K_M.gguf": q4},
        "org/Split-GGUF": {f"big-Q4_K_M-0000{i}-of-00003.gguf": q4 for i in (1, 2, 3)},
    })
    stand_in.gated = {"org/Gated-GGUF"}
    yield stand_in
    server.shutdown()


def test_a_quant_tag_picks_its_file_case_insensitively(hub, fake, cli, write_config):
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:q8_0")
    assert result.code == 0, result.text
    assert (volume(fake) / "Tiny-Q8_0.gguf").read_bytes() == hub.repos["org/Tiny-GGUF"]["Tiny-Q8_0.gguf"]
    assert not (volume(fake) / "Tiny-Q4_K_M.gguf").exists()


def test_no_tag_is_q4_k_m_or_the_only_model(hub, fake, cli, write_config):
    path = write_config("")
    assert cli("--config", path, "models", "pull", "org/Tiny-GGUF").code == 0
    assert (volume(fake) / "Tiny-Q4_K_M.gguf").exists()
    assert cli("--config", path, "models", "pull", "org/Only-GGUF").code == 0
    assert (volume(fake) / "only.Q8_0.gguf").exists()


def test_unknown_ambiguous_and_empty_are_usage_errors_that_list_the_choices(hub, fake, cli, write_config):
    path = write_config("")
    unknown = cli("--config", path, "models", "pull", "org/Tiny-GGUF:IQ4_XS")
    assert unknown.code == 2 and "no IQ4_XS" in unknown.err and "F16, Q4_K_M, Q8_0" in unknown.err
    twins = cli("--config", path, "models", "pull", "org/Twins-GGUF:Q4_K_M")
    assert twins.code == 2 and "a/m-Q4_K_M" in twins.err and "b/n-Q4_K_M" in twins.err
    empty = cli("--config", path, "models", "pull", "org/Empty")
    assert empty.code == 2 and "has no GGUF files" in empty.err
    missing = cli("--config", path, "models", "pull", "org/Nope-GGUF")
    assert missing.code == 2 and "was not found" in missing.err
    assert "Traceback" not in unknown.text + twins.text + empty.text + missing.text


def test_a_gated_repo_needs_a_token_which_is_never_shown(hub, fake, cli, write_config, monkeypatch):
    path = write_config("")
    denied = cli("--config", path, "models", "pull", "org/Gated-GGUF")
    assert denied.code == 1 and "access denied (HTTP 401)" in denied.err and "HF_TOKEN" in denied.err
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    allowed = cli("--config", path, "models", "pull", "org/Gated-GGUF")
    assert allowed.code == 0, allowed.text
    assert "hf_good" not in allowed.text


def test_list_json_says_what_fits_and_downloads_no_weights(hub, fake, cli, write_config):
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF", "--list", "--json")
    assert result.code == 0, result.text
    rows = {r["quant"]: r for r in json.loads(result.out)}
    assert set(rows) == {"Q4_K_M", "Q8_0", "F16"}
    for row in rows.values():
        assert {"quant", "files", "size", "fits", "max_ctx"} <= set(row)
        assert row["fits"] is True and row["max_ctx"] and row["total"] > row["size"]
    total = sum(len(d) for d in hub.repos["org/Tiny-GGUF"].values())
    assert 0 < hub.served < total / 3  # headers only
    assert "airpods_llamacpp_models" not in fake.volumes  # nothing was written anywhere
    table = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF", "--list")
    assert "Q8_0" in table.out and "pull one: airpods models pull org/Tiny-GGUF:" in table.err


def test_a_split_model_comes_in_all_its_parts_verified(hub, fake, cli, write_config):
    result = cli("--config", write_config(""), "models", "pull", "org/Split-GGUF:Q4_K_M")
    assert result.code == 0, result.text
    parts = sorted(p.name for p in volume(fake).glob("*.gguf"))
    assert parts == [f"big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert "downloaded big-Q4_K_M-00001-of-00003.gguf" in result.err


def test_a_file_reference_still_works(hub, fake, cli, write_config):
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF/tiny-f16.gguf")
    assert result.code == 0, result.text
    assert (volume(fake) / "tiny-f16.gguf").exists()


VISION_ROUTER = """
[services.open-webui]
enabled = false
[services.eyes]
kind = "llamacpp"
mode = "router"
images = { cpu = "localhost/test/llama:1" }
ports = [{ container = 8080 }]
[services.eyes.models.look]
file = "Eyes-Q4_K_M.gguf"
"""


def test_a_vision_model_comes_with_its_projector_and_services_get_it(hub, fake, cli, write_config, tmp_path):
    hub.repos["org/Eyes-GGUF"] = {"Eyes-Q4_K_M.gguf": gguf(tmp_path, "e", 15), "Eyes-Q8_0.gguf": gguf(tmp_path, "f", 7),
                                  "mmproj-Eyes-f16.gguf": gguf(tmp_path, "g", 1, layers=1),
                                  "mmproj-Eyes-q8_0.gguf": gguf(tmp_path, "h", 7, layers=1)}
    path = write_config('[services.llamacpp]\ndefault_model = "Eyes-Q4_K_M.gguf"\n' + VISION_ROUTER)
    pulled = cli("--config", path, "models", "pull", "org/Eyes-GGUF")
    assert pulled.code == 0 and "with its vision projector mmproj-Eyes-f16.gguf" in pulled.err, pulled.text
    [entry] = json.loads(cli("--config", path, "models", "list", "--json").out)  # the projector is no model
    assert entry["file"] == "Eyes-Q4_K_M.gguf" and entry["vision"] and entry["mmproj"] == "mmproj-Eyes-f16.gguf"
    assert "Eyes-Q4_K_M.gguf (vision)" in cli("--config", path, "models", "list").out
    single = json.loads(cli("--config", path, "config", "render", "llamacpp", "--json").out)
    assert single["command"][single["command"].index("--mmproj") + 1] == "/models/mmproj-Eyes-f16.gguf"
    router = json.loads(cli("--config", path, "config", "render", "eyes", "--json").out)
    assert "mmproj = /models/mmproj-Eyes-f16.gguf" in router["router_preset"]
    mine = json.loads(cli("--config", write_config('[services.llamacpp]\ndefault_model = "Eyes-Q4_K_M.gguf"\n'
                                                   'args = ["--mmproj", "/models/other.gguf"]\n'),
                          "config", "render", "llamacpp", "--json").out)
    assert mine["command"].count("--mmproj") == 1 and "/models/other.gguf" in mine["command"]  # the user's wins


def test_no_mmproj_pulls_the_model_alone(hub, fake, cli, write_config, tmp_path):
    hub.repos["org/Eyes-GGUF"] = {"Eyes-Q4_K_M.gguf": gguf(tmp_path, "e", 15),
                                  "mmproj-Eyes-f16.gguf": gguf(tmp_path, "g", 1, layers=1)}
    assert cli("--config", write_config(""), "models", "pull", "org/Eyes-GGUF", "--no-mmproj").code == 0
    assert sorted(p.name for p in volume(fake).glob("*.gguf")) == ["Eyes-Q4_K_M.gguf"]


def test_a_pull_that_cannot_fit_the_disk_is_refused_before_downloading(hub, fake, cli, write_config, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    result = cli("--config", write_config(""), "models", "pull", "org/Tiny-GGUF:Q8_0")
    assert result.code == 1 and "nothing was downloaded" in result.err and "GB free" in result.err, result.text
    assert hub.served == 0 and list(volume(fake).glob("*")) == []


def test_list_on_a_gpu_machine_uses_the_gpu_plan(hub, fake, cli, write_config, tmp_path, isolated, monkeypatch):
    from tests.unit.builders import fake_nvidia

    fake_nvidia(isolated, monkeypatch, [("Fake 2GB", 2048, 2000)])
    big = tmp_path / "big.gguf"
    write_gguf(big, llama_like("llama", 30, 576, 9, 3, 1536, 49152, 8192),
               [(f"blk.{i}.w", F16, [576, 90_000]) for i in range(30)])  # ~3 GiB of tensors
    with open(big, "rb") as fh:
        header = fh.read(200_000)  # the stand-in serves the header alone: no 3 GiB here
    hub.repos["org/Two-GGUF"] = {"two-Q4_K_M.gguf": gguf(tmp_path, "s", 15), "two-F16.gguf": header}
    path = write_config('[services.llamacpp]\nimages = { cpu = "localhost/x:1", cuda = "localhost/x:1" }\n')
    rows = {r["quant"]: r for r in json.loads(cli("--config", path, "models", "pull", "org/Two-GGUF", "--list",
                                                  "--json").out)}
    assert rows["Q4_K_M"]["fits"] is True and rows["Q4_K_M"]["gpus"] == [0] and rows["Q4_K_M"]["gpu_layers"] == 4
    assert rows["F16"]["fits"] is False and 0 < rows["F16"]["gpu_layers"] < 30

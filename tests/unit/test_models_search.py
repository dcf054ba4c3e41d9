"""`airpods models search`, against the local stand-in of the hub (its search API, listings and
ranged reads of real GGUF header bytes: a vocabulary as large as SmolLM2's, several
quantizations and sizes): every repo found with its quantizations, what fits here, the largest
context, the predicted speed; headers only (the stand-in counts what it served); a repo whose
header is broken says why in its row, and the search still exits 0."""

from __future__ import annotations

import json

import pytest

from tests.gguf_builder import llama_like, write_gguf
from tests.hub_standin import serve

Q4_K, Q8_0, F16 = 12, 8, 1


def model(tmp, name: str, ttype: int, layers: int, embd: int = 1024) -> bytes:
    """A llama-shaped GGUF: SmolLM2's vocabulary size (its header ~1.6 MB, like a real one's) and
    `layers` blocks of weights of one type (zeros: only the header is ever read)."""
    vocab = [f"tok{i:05d}" for i in range(49152)]
    kv = {**llama_like("llama", layers, embd, 16, 4, 4 * embd, len(vocab), 8192),
          "tokenizer.ggml.tokens": vocab, "tokenizer.ggml.merges": [f"t {i}" for i in range(48900)]}
    tensors = [("token_embd.weight", ttype, [embd, 49152])]
    tensors += [(f"blk.{i}.ffn_up.weight", ttype, [embd, 4 * embd]) for i in range(layers)]
    return write_gguf(tmp / name, kv, tensors).read_bytes()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    files = {
        "org/Small-GGUF": {f"small-{q}.gguf": model(tmp_path, f"s{q}", t, 2) for q, t in
                           (("Q4_K_M", Q4_K), ("Q8_0", Q8_0), ("F16", F16))},
        "org/Large-GGUF": {f"large-{q}.gguf": model(tmp_path, f"l{q}", t, 8, 2048) for q, t in
                           (("Q4_K_M", Q4_K), ("Q8_0", Q8_0))},
        "org/Vision-GGUF": {"v-Q4_K_M.gguf": model(tmp_path, "v", Q4_K, 2), "mmproj-v-f16.gguf": b"GGUF"},
        "org/Broken-GGUF": {"broken-Q4_K_M.gguf": b"GGUF\x03\x00\x00\x00" + b"\xff" * 4000},
    }
    stand_in, server = serve(monkeypatch, files)
    yield stand_in
    server.shutdown()


def headers(stand_in) -> int:
    """The header bytes of the smallest quantization of each readable repo (what a search reads)."""
    from airpods.models.gguf_header import parse_header

    total = 0
    for files in stand_in.repos.values():
        ggufs = {p: d for p, d in files.items() if not p.startswith("mmproj") and len(d) > 10000}
        if ggufs:
            smallest = min(ggufs.values(), key=len)
            total += parse_header(smallest, len(smallest)).data_offset
    return total


def test_search_lists_fit_and_speed_reads_headers_only_and_survives_a_broken_one(hub, fake, cli, write_config,
                                                                                isolated):
    from airpods.bench.machine import store_bandwidth

    store_bandwidth({"XDG_DATA_HOME": str(isolated / "data")}, 10e9)  # as `airpods doctor` stores it
    path = write_config('[runtime]\nmemory_budget = "160m"\n[services.llamacpp.command_args]\nctx_size = 2048\n')
    result = cli("--config", path, "models", "search", "gguf", "--json")
    assert result.code == 0, result.text
    repos = {r["repo"]: r for r in json.loads(result.out)}
    assert set(repos) == {"org/Small-GGUF", "org/Large-GGUF", "org/Vision-GGUF", "org/Broken-GGUF"}
    assert hub.searched[0]["filter"] == "gguf" and hub.searched[0]["sort"] == "downloads"

    small = repos["org/Small-GGUF"]
    quants = {q["quant"]: q for q in small["quants"]}
    assert set(quants) == {"Q4_K_M", "Q8_0", "F16"} and quants["F16"]["size"] > quants["Q8_0"]["size"]
    assert small["best"]["quant"] == small["quants"][0]["quant"]  # the best that fits comes first
    assert all(q["fits"] for q in small["quants"] if q["size"] <= small["best"]["size"])
    assert small["run"] == f"airpods run org/Small-GGUF:{small['best']['quant']}"
    assert quants["Q4_K_M"]["max_ctx"] >= 2048
    q4, q8 = quants["Q4_K_M"]["generation_tokens_per_s"], quants["Q8_0"]["generation_tokens_per_s"]
    assert q4 > q8 > 0  # fewer bytes a token: faster
    assert "memory bandwidth" in small["prediction_basis"]

    large = repos["org/Large-GGUF"]
    assert [q["fits"] for q in large["quants"]] == [False, False] and large["best"] is None and large["run"] is None
    assert repos["org/Vision-GGUF"]["vision"] and not small["vision"]
    broken = repos["org/Broken-GGUF"]
    assert "cannot be read" in broken["error"] and broken["quants"] == []

    read = hub.served
    assert 0 < read <= 1.2 * headers(hub), (read, headers(hub))  # headers, never weights

    again = cli("--config", path, "models", "search", "small")  # the table; the header comes from the cache
    assert again.code == 0, again.text
    assert hub.served == read and "org/Small-GGUF" in again.out and "airpods run org/Small-GGUF:" in again.err
    assert "Traceback" not in result.text + again.text


def test_search_of_nothing_found_and_a_hub_that_fails_are_clear(hub, fake, cli, write_config, monkeypatch):
    path = write_config("")
    none = cli("--config", path, "models", "search", "zzz-nothing")
    assert none.code == 0 and "no GGUF repo on the hub matches" in none.err
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    down = cli("--config", path, "models", "search", "small")
    assert down.code == 1 and "searching http://127.0.0.1:9 failed" in down.err and "Traceback" not in down.text

"""`airpods models pull ORG/REPO[:QUANT]` and `--list`, against a local stand-in of the hub's HTTP
API (the tree listing, resolve with HEAD and ranged GETs, a gated repo) and the in-memory runtime
with its volumes on disk. The stand-in counts the bytes it served."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.gguf_builder import llama_like, write_gguf

F16 = 1


class StandIn(http.server.BaseHTTPRequestHandler):
    repos: dict[str, dict[str, bytes]] = {}
    gated: set[str] = set()
    served = 0
    cut: dict[str, int] = {}  # file -> bytes sent before the connection drops (once)
    lie: set[str] = set()  # files whose published sha256 is wrong (a corrupted download)

    def _route(self) -> tuple[str, str | None, bytes | None] | None:
        path = self.path.split("?")[0]
        for repo, files in self.repos.items():
            mine = path.startswith((f"/api/models/{repo}/", f"/{repo}/"))
            if mine and repo in self.gated and self.headers.get("Authorization") != "Bearer hf_good":
                self.send_response(401)
                self.end_headers()
                return None
            if path == f"/api/models/{repo}/tree/main":
                return repo, None, None
            prefix = f"/{repo}/resolve/main/"
            if path.startswith(prefix) and path[len(prefix):] in files:
                return repo, path[len(prefix):], files[path[len(prefix):]]
        self.send_response(404)
        self.end_headers()
        return None

    def do_HEAD(self):  # noqa: N802
        hit = self._route()
        if hit is None:
            return
        data = hit[2] or b""
        self.send_response(302)
        self.send_header("Location", self.path)
        sha = "0" * 64 if hit[1] in self.lie else hashlib.sha256(data).hexdigest()
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.end_headers()

    def do_GET(self):  # noqa: N802
        hit = self._route()
        if hit is None:
            return
        repo, name, data = hit
        if name is None:
            body = json.dumps([{"type": "file", "path": p, "size": len(d),
                                "lfs": {"oid": hashlib.sha256(d).hexdigest(), "size": len(d)}}
                               for p, d in self.repos[repo].items()] + [{"type": "directory", "path": "x"}]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start, end = 0, len(data) - 1
        if self.headers.get("Range", "").startswith("bytes="):
            a, _, b = self.headers["Range"][6:].partition("-")
            start, end = int(a), min(end, int(b)) if b else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if name in self.cut:  # a dropped connection, part of the way in
            self.wfile.write(data[start:start + self.cut.pop(name)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:end + 1])
        type(self).served += end - start + 1

    def log_message(self, *args):
        pass


def serve(monkeypatch, repos: dict[str, dict[str, bytes]]):
    """Run the stand-in with these repos; returns (the handler class, the server)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    StandIn.repos, StandIn.gated, StandIn.served, StandIn.cut, StandIn.lie = repos, set(), 0, {}, set()
    return StandIn, server


def gguf(tmp: Path, name: str, ftype: int, layers: int = 4) -> bytes:
    kv = {**llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192), "general.file_type": ftype,
          "tokenizer.ggml.tokens": [f"t{i}" for i in range(3000)]}  # a header of a few dozen kB
    path = write_gguf(tmp / name, kv, [(f"blk.{i}.w", F16, [576, 1000]) for i in range(layers)])
    return path.read_bytes()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    q4, q8, f16 = gguf(tmp_path, "a", 15), gguf(tmp_path, "b", 7), gguf(tmp_path, "c", 1)
    StandIn.repos = {
        "org/Tiny-GGUF": {"Tiny-Q4_K_M.gguf": q4, "Tiny-Q8_0.gguf": q8, "tiny-f16.gguf": f16, "README.md": b"# x"},
        "org/Only-GGUF": {"only.Q8_0.gguf": q8},
        "org/Twins-GGUF": {"a/m-Q4_K_M.gguf": q4, "b/n-Q4_K_M.gguf": q4},
        "org/Empty": {"README.md": b"nothing"},
        "org/Gated-GGUF": {"g-Q4_K_M.gguf": q4},
        "org/Split-GGUF": {f"big-Q4_K_M-0000{i}-of-00003.gguf": q4 for i in (1, 2, 3)},
    }
    StandIn.gated, StandIn.served, StandIn.cut, StandIn.lie = {"org/Gated-GGUF"}, 0, {}, set()
    yield StandIn
    server.shutdown()


def volume(fake) -> Path:
    return Path(fake.volume_path("airpods_llamacpp_models"))


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
    from tests.unit.test_gpu_cli import fake_nvidia

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

"""`airpods models` against a real Podman volume; `pull` against a local server with the hub's URL
layout and headers (the hub itself is unreachable here)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.integration.builders import fake_gguf, volume_dir
from tests.podman_env import podman

pytestmark = pytest.mark.podman


def test_import_list_rm(prun, cli, write_config, tmp_path):
    path = write_config(prun.header())
    model = tmp_path / "tiny-q4.gguf"
    fake_gguf(model)
    assert cli("--config", path, "models", "import", str(model)).code == 0
    [entry] = json.loads(cli("--config", path, "models", "list", "--json").out)
    assert entry == {"file": "tiny-q4.gguf", "size": 300_000, "architecture": "qwen2", "quantization": "Q4_K_M",
                     "sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "source": str(model),
                     "parts": 1, "mmproj": None, "vision": False}  # the last three: split models, projectors
    again = cli("--config", path, "models", "import", str(model))
    assert again.code == 2 and "already in the model volume" in again.err
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    assert cli("--config", path, "models", "import", str(not_gguf)).code == 2
    refused = cli("--config", path, "models", "rm", "tiny-q4.gguf")  # no TTY, no --yes
    assert refused.code == 2 and (volume_dir(prun.models_volume) / "tiny-q4.gguf").exists()
    assert cli("--config", path, "models", "rm", "tiny-q4.gguf", "--yes").code == 0
    assert json.loads(cli("--config", path, "models", "list", "--json").out) == []
    assert podman("volume", "exists", prun.models_volume, check=False).returncode == 0


def test_pull_resumes_and_verifies_sha256(prun, cli, write_config, tmp_path, hub):
    path = write_config(prun.header())
    data = fake_gguf(tmp_path / "src.gguf", size=2_000_000)
    hub.repos["org/repo-GGUF"] = {"small-Q4_K_M.gguf": data}
    # A previous, interrupted download left the first 700 kB behind.
    assert cli("--config", path, "models", "list").code == 0
    podman("volume", "create", prun.models_volume, check=False)
    (volume_dir(prun.models_volume) / ".small-Q4_K_M.gguf.part").write_bytes(data[:700_000])

    result = cli("--config", path, "models", "pull", "org/repo-GGUF/small-Q4_K_M.gguf")
    assert result.code == 0, result.text
    assert hub.served == 2_000_000 - 700_000  # only the rest was downloaded
    pulled = volume_dir(prun.models_volume) / "small-Q4_K_M.gguf"
    assert pulled.read_bytes() == data
    [entry] = json.loads(cli("--config", path, "models", "list", "--json").out)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["quantization"] == "Q4_K_M"


def test_pull_rejects_bad_sha_and_bad_refs(prun, cli, write_config, tmp_path, hub):
    path = write_config(prun.header())
    hub.repos["org/repo"] = {"x.gguf": fake_gguf(tmp_path / "x.gguf")}
    hub.lie.add("x.gguf")
    result = cli("--config", path, "models", "pull", "org/repo/x.gguf")
    assert result.code == 1 and "sha256 mismatch" in result.err
    assert not list(volume_dir(prun.models_volume).glob("*x.gguf*"))
    missing = cli("--config", path, "models", "pull", "org/repo/missing.gguf")
    assert missing.code == 2 and "not found" in missing.err
    bad = cli("--config", path, "models", "pull", "just-a-name.gguf")
    assert bad.code == 2 and "org/repo/file.gguf" in bad.err

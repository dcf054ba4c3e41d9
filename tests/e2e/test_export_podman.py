"""The podman target of `airpods export kube`, run for real with `podman kube play` (Podman 4.3)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.builders import MODEL, api_key, chat, llama_service
from tests.podman_env import free_port, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def test_podman_kube_play_serves_an_authenticated_chat(prun, cli, write_config, smollm2, isolated, tmp_path):
    name, port = prun.name("kp"), free_port()
    path = write_config(prun.header() + llama_service(name, name, port=port))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    out = tmp_path / "llamacpp.yaml"
    exported = cli("--config", path, "export", "kube", name, "--target", "podman", "-o", str(out))
    assert exported.code == 0, exported.text
    key = api_key(isolated, name)
    assert key not in out.read_text() and "--api-key-file" in out.read_text()
    try:
        played = podman("kube", "play", str(out), check=False)
        assert played.returncode == 0, played.stderr
        url, deadline, code = f"http://127.0.0.1:{port}/v1", time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            try:
                code, answer = chat(url, key)
            except OSError:  # not listening yet
                code = 0
            if code == 200:
                break
            time.sleep(0.2)
        assert code == 200 and answer["choices"][0]["message"]["content"].strip()
        assert chat(url, None)[0] == 401 and chat(url, "wrong")[0] == 401
    finally:
        down = podman("kube", "down", str(out), check=False)
    assert down.returncode == 0, down.stderr
    assert podman("pod", "exists", name, check=False).returncode == 1
    assert podman("volume", "exists", prun.models_volume, check=False).returncode == 0  # the model stays
    listed = cli("--config", path, "models", "list", "--json")
    assert MODEL in listed.out

"""The in-memory runtime behind the CLI: commands run as a user types them, against the fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.runtime.fake import FakeRuntime
from tests.gguf_builder import llama_like, write_gguf
from tests.unit.builders import CADDY, LLAMA, MODELS


@pytest.fixture(autouse=True)
def volumes_on_disk(monkeypatch, tmp_path):
    """Where airpods looks for volumes' files without asking Podman: the fake's folder, never this
    machine's Podman storage."""
    monkeypatch.setenv("AIRPODS_VOLUMES_ROOT", str(tmp_path / "volumes"))


@pytest.fixture
def fake(monkeypatch, tmp_path) -> FakeRuntime:
    runtime = FakeRuntime(volume_root=tmp_path / "volumes")
    monkeypatch.setattr("airpods.runtime.connect.connect", lambda **_: runtime)
    return runtime


DEFAULT_PORTS = {*range(8080, 8100), 3000, 11434}  # the default config's host ports


@pytest.fixture(autouse=True)
def default_ports_are_the_fakes(monkeypatch):
    """Unit tests run the default config against the in-memory runtime, whose host ports are not
    this machine's: a user's own llamacpp on 127.0.0.1:8080 (as in CI, where one runs through
    the whole suite) must not make them fail. Other ports (a test's own) are checked for real."""
    from airpods.orchestrate import preflight

    real = preflight.port_free
    monkeypatch.setattr(preflight, "port_free", lambda ip, port: port in DEFAULT_PORTS or real(ip, port))


@pytest.fixture(autouse=True)
def json_keeps_its_contract(monkeypatch):
    """Every JSON a command prints in a unit test is checked against its shape (cli/contract.py):
    one without a shape, or with a key missing or unknown to the contract, fails the test."""
    from airpods.cli.terminal import Terminal

    real, broken = Terminal.print_json, []

    def checked(self, data, shape=None):
        broken.extend(["printed without a contract"] if shape is None else shape.problems(data))
        real(self, data, shape)

    monkeypatch.setattr(Terminal, "print_json", checked)
    yield
    assert broken == [], f"the --json contract (airpods/cli/contract.py): {sorted(set(broken))}"


@pytest.fixture
def rt(fake):
    fake.images |= {CADDY, LLAMA, "ghcr.io/open-webui/open-webui:main"}
    fake.ensure_volume(MODELS)
    write_gguf(Path(fake.volume_path(MODELS)) / "SmolLM2-135M-Instruct.Q4_1.gguf",
               llama_like("llama", 2, 64, 4, 2, 128, 256, 512), [("token_embd.weight", 0, [64, 256])])
    return fake

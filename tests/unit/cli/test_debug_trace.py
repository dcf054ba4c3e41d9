"""--debug traces each call to the runtime port: one line each, never a secret's value."""

from __future__ import annotations

import pytest

from airpods.runtime.trace import Traced, short


def test_debug_says_each_podman_call_of_a_start(fake, cli, write_config):
    fake.images.add("localhost/test/web:1")
    path = write_config('[services.web]\nimage = "localhost/test/web:1"\nports = [{ host = 18571, container = 80 }]\n')
    result = cli("--debug", "--config", path, "start", "web", "--no-wait")
    assert result.code == 0, result.text
    lines = [line.strip() for line in result.err.splitlines() if "podman: " in line]
    assert any(line.startswith("podman: create_container(<spec web>") for line in lines), lines
    assert any(line.startswith("podman: start_container(") and " ms)" in line for line in lines)
    quiet = cli("--config", path, "status")
    assert "podman: " not in quiet.err


def test_a_secret_value_is_never_traced_and_a_failure_is():
    said = []

    class Port:
        def put_secret(self, name, value):
            return None

        def inspect(self, name):
            raise RuntimeError("gone")

    traced = Traced(Port(), said.append)
    traced.put_secret("llamacpp-api-key", "sk-very-secret")
    with pytest.raises(RuntimeError):
        traced.inspect("x")
    assert "sk-very-secret" not in " ".join(said) and "********" in said[0]
    assert said[1].startswith("podman: inspect('x') raised RuntimeError")
    assert short("y" * 200).endswith("...") and short({"a": 1}) == "<1 keys>"

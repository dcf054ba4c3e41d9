"""Host ports: every service's port counted, llama.cpp's automatic ones stable across enabling."""

from __future__ import annotations

import json

LLAMA = """
[services.{name}]
kind = "llamacpp"
enabled = {enabled}
images = {{ cpu = "localhost/test/llama:1" }}
ports = [{{ container = 8080 }}]
default_model = "m.gguf"
"""
WEB = """
[services.web]
image = "localhost/test/web:1"
ports = [{{ container = {port} }}]
"""


def _ports(cli, path):
    out = {}
    for name in ("llamacpp", "a", "b", "web"):
        result = cli("--config", path, "config", "render", name, "--json")
        if result.code == 0:
            out[name] = json.loads(result.out)["ports"][0]["host"]
    return out


def test_a_port_without_host_is_counted_before_llamacpp_ports_are_given(cli, write_config):
    path = write_config("[runtime]\nllamacpp_base_port = 8080\n" + WEB.format(port=8080))
    ports = _ports(cli, path)
    assert ports["web"] == 8080 and ports["llamacpp"] == 8081


def test_enabling_a_service_does_not_move_another_ones_port(cli, write_config):
    text = LLAMA.format(name="a", enabled="false") + LLAMA.format(name="b", enabled="true")
    before = _ports(cli, write_config(text))
    after = _ports(cli, write_config(text.replace("enabled = false", "enabled = true")))
    assert before["b"] == after["b"] and after["a"] != after["b"]


def test_validate_warns_when_a_disabled_service_would_clash(cli, write_config):
    text = ('[services.web]\nimage = "localhost/test/web:1"\nports = [{ host = 3100, container = 80 }]\n'
            '[services.web2]\nenabled = false\nimage = "localhost/test/web:1"\n'
            'ports = [{ host = 3100, container = 80 }]\n')
    result = cli("config", "validate", write_config(text))
    assert result.code == 0, result.text
    assert "services.web2.ports[0]: host port 127.0.0.1:3100 is also used by service 'web'" in result.err
    both = cli("config", "validate", write_config(text.replace("enabled = false", "enabled = true")))
    assert both.code == 2 and "host port 3100 is also used by service 'web'" in both.err

"""Where a key may go. A service's API key and a person's prompt go only to a port Podman says that
service's running container publishes (anyone on this machine may listen on a stopped service's
port); the probe key is on no command line; HF_TOKEN follows a listing only on the hub's own
origin; a key with a line end is refused by validation and no error text carries one."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import http_server, listener, llama_config, with_models
from tests.podman_env import free_port

KEY = "sk-test-key-0123456789"

@pytest.mark.parametrize("words", [("chat", "hello, keep this secret"), ("models", "ps"), ("models", "load", "m1"),
                                   ("models", "unload", "m1")])
def test_a_stopped_service_s_port_gets_neither_the_key_nor_the_prompt(fake, cli, write_config, words):
    with listener() as stranger:  # someone else listens on the port while the service is not running
        text = llama_config(stranger.port, router=words[0] == "models", key=KEY)
        result = cli("--config", write_config(text), *words)
    assert result.code == 1, result.text
    assert "is not running" in result.err and "airpods start llamacpp" in result.err
    assert stranger.connections == 0 and not stranger.raw
    assert KEY not in result.text


def test_run_on_a_stopped_router_sends_no_keyed_request_before_it_starts_it(fake, cli, write_config):
    with_models(fake, "m1.gguf", "m2.gguf")
    with listener() as stranger:
        path = write_config(llama_config(stranger.port, router=True, key=KEY))
        result = cli("--config", path, "run", "m2.gguf", "hi")
    assert result.code != 0  # the port is busy: the start's preflight refuses it
    assert "busy" in result.err
    assert stranger.connections == 0 and not stranger.raw


def test_a_port_the_running_container_does_not_publish_gets_no_key(fake, cli, write_config):
    """The config moved the service to another port since it started: status, top and chat send
    nothing there (the running container still publishes the old one)."""
    with_models(fake, "SmolLM2-135M-Instruct.Q4_1.gguf")
    fake.images.add("ghcr.io/ggml-org/llama.cpp:server")
    old = free_port()
    path = write_config(llama_config(old, key=KEY))
    assert cli("--config", path, "start", "--no-wait").code == 0
    with listener() as stranger:
        Path(path).write_text(llama_config(stranger.port, key=KEY))
        rows = json.loads(cli("--config", path, "status", "--json").out)
        assert rows[0]["state"] == "running" and rows[0]["outdated"] and rows[0]["model"] is None
        top = json.loads(cli("--config", path, "top", "--json", "--interval", "0.2").out)
        assert "does not publish" in top[0]["why"]
        chat = cli("--config", path, "chat", "hello")
        assert chat.code == 1 and "does not publish" in chat.err
    assert stranger.connections == 0 and not stranger.raw


def test_the_probe_key_reaches_the_server_and_no_command_line(tmp_path):
    """The llama.cpp check, run by a real sh with a curl that records its argv: the header arrives,
    no argv holds the key (every local user can read /proc/PID/cmdline)."""
    from airpods.plan.health import KEY_PATH, CheckFacts, script

    sh, curl = shutil.which("dash") or shutil.which("sh"), shutil.which("curl")
    assert sh and curl, "sh and curl are needed (the llama.cpp image has both)"
    key = "probe-key-" + os.urandom(8).hex()
    (tmp_path / "health.key").write_text(key + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "argv.log"
    wrapper = bin_dir / "curl"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {curl} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)

    def answer(method, path, headers, body):
        return 200, "application/json", b'{"content":"x"}'

    with http_server(answer) as server:
        check = script(CheckFacts("llamacpp", server.port, keyed=True)).replace(KEY_PATH, str(tmp_path / "health.key"))
        done = subprocess.run([sh, "-c", check], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True,
                              text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    completion = [h for m, p, h, _ in server.requests if p == "/completion"]
    assert completion and completion[0]["Authorization"] == f"Bearer {key}"
    assert argv_log.read_text().count("\n") >= 2 and key not in argv_log.read_text()
    assert key not in check


def test_a_listing_s_next_page_on_another_origin_is_not_followed_with_the_token(monkeypatch):
    from airpods.errors import RuntimeFailure
    from airpods.models.hub_repo import list_files

    with http_server(lambda *a: (200, "application/json", b"[]")) as elsewhere:
        def hub(method, path, headers, body):
            return 200, "application/json", json.dumps([{"type": "file", "path": "a.gguf", "size": 1}]).encode()

        with http_server(hub) as endpoint:
            import requests

            real = requests.get

            def get(url, **kw):  # the hub's answer, with a next page on another server
                resp = real(url, **kw)
                resp.headers["Link"] = f'<http://127.0.0.1:{elsewhere.port}/page2>; rel="next"'
                return resp

            monkeypatch.setattr(requests, "get", get)
            with pytest.raises(RuntimeFailure, match="another server"):
                list_files("org/repo", "main", f"http://127.0.0.1:{endpoint.port}", {"HF_TOKEN": "hf_secret_tok"})
    assert endpoint.saw("hf_secret_tok") and not elsewhere.requests


def test_a_next_page_on_the_endpoint_itself_is_followed(monkeypatch):
    from airpods.models.hub_repo import list_files

    def hub(method, path, headers, body):
        name = "b.gguf" if "page2" in path else "a.gguf"
        return 200, "application/json", json.dumps([{"type": "file", "path": name, "size": 1}]).encode()

    with http_server(hub) as endpoint:
        import requests

        real = requests.get

        def get(url, **kw):
            resp = real(url, **kw)
            if "page2" not in url:
                resp.headers["Link"] = '</api/models/org/repo/tree/main?page2=1>; rel="next"'
            return resp

        monkeypatch.setattr(requests, "get", get)
        files = list_files("org/repo", "main", f"http://127.0.0.1:{endpoint.port}", {})
    assert [f.path for f in files] == ["a.gguf", "b.gguf"]


def test_an_api_key_with_a_line_end_is_refused_without_showing_it(cli, write_config):
    result = cli("--config", write_config('[services.llamacpp]\napi_key = "sk-live-abcdef\\n"\n'), "config", "validate")
    assert result.code == 2 and "services.llamacpp.api_key" in result.err and "one token" in result.err
    assert "sk-live-abcdef" not in result.text


def test_no_internal_error_text_carries_a_key(monkeypatch, cli):
    def boom(*a, **k):
        raise ValueError("Invalid header value b'Bearer sk-live-abcdef\\n'")

    monkeypatch.setattr("airpods.cli.commands.config_cmd.path_cmd.callback", boom)
    result = cli("config", "path")
    assert result.code == 70 and "internal error" in result.err
    assert "sk-live-abcdef" not in result.text and "Bearer <key>" in result.err

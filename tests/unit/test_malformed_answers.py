"""Answers and files of the wrong shape never make an internal error (exit 70): a NaN gauge, a
/slots body that is not a list, a router entry whose status is a string, a streamed event whose
choices are not a list, caches holding `[]`, a manifest entry that is not an object, a stop
timeout that is not a number. Each gives a skipped sample or a clear message, the right exit code
and the rest of the output."""

from __future__ import annotations

import json

import pytest

from airpods.orchestrate.running import Running
from airpods.runtime.port import ContainerState
from tests.helpers import http_server, llama_config, with_models


@pytest.fixture
def served(fake, monkeypatch):
    """A llama.cpp service of the fake's, running, whose port a local stand-in answers."""
    monkeypatch.setattr("airpods.orchestrate.preflight.port_free", lambda ip, port: True)
    monkeypatch.setattr("airpods.orchestrate.start.check_models", lambda *a: [])
    fake.images.add("ghcr.io/ggml-org/llama.cpp:server")
    return fake


def _json(data) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(data).encode()


@pytest.mark.parametrize("slots", [{"not": "a list"}, 5, [{"id": "x", "n_ctx": "big", "is_processing": True}]])
def test_top_with_a_nan_gauge_and_slots_of_another_shape(served, cli, write_config, slots):
    def answer(method, path, headers, body):
        if path.startswith("/metrics"):
            return 200, "text/plain", (b"llamacpp:requests_processing NaN\nllamacpp:requests_deferred +Inf\n"
                                       b"llamacpp:prompt_tokens_total 10\nllamacpp:tokens_predicted_total 5\n")
        return _json(slots)

    with http_server(answer) as server:
        path = write_config(llama_config(server.port))
        assert cli("--config", path, "start", "--no-wait").code == 0
        result = cli("--config", path, "top", "--json", "--interval", "0.2")
        once = cli("--config", path, "top", "--once", "--interval", "0.2")
    assert result.code == 0, result.text
    [row] = json.loads(result.out)
    assert row["service"] == "llamacpp" and row["why"] is None and isinstance(row["requests_processing"], int)
    assert once.code == 0 and "llamacpp" in once.out


def test_a_router_entry_whose_status_is_a_string(served, cli, write_config):
    def answer(method, path, headers, body):
        return _json({"data": [{"id": "m1", "status": "loaded", "aliases": "not-a-list"},
                               {"id": "m2", "status": {"value": "unloaded", "exit_code": "x"}}, "junk"]})

    with http_server(answer) as server:
        path = write_config(llama_config(server.port, router=True))
        assert cli("--config", path, "start", "--no-wait").code == 0
        result = cli("--config", path, "models", "ps", "--json")
    assert result.code == 0, result.text
    rows = {r["id"]: r for r in json.loads(result.out)}
    assert rows["m1"]["state"] == "loaded" and rows["m2"]["state"] == "unloaded" and rows["m2"]["exit_code"] is None


def test_streamed_events_whose_choices_are_not_a_list_are_skipped(served, cli, write_config):
    events = [{"choices": {"0": {"delta": {"content": "bad"}}}}, {"choices": 7}, {"choices": ["x", {"delta": 3}]},
              {"choices": [{"delta": {"content": "good"}}], "model": ["x"]},
              {"choices": [{"delta": {"content": " answer"}, "finish_reason": "stop"}]}]
    stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    def answer(method, path, headers, body):
        return 200, "text/event-stream", stream.encode()

    with http_server(answer) as server:
        path = write_config(llama_config(server.port))
        assert cli("--config", path, "start", "--no-wait").code == 0
        result = cli("--config", path, "chat", "hi")
        from airpods.chat.client import ChatClient, Endpoint
        from airpods.chat.session import Conversation
        from airpods.cli.chat_loop import _ask
        from airpods.cli.terminal import Terminal

        conversation = Conversation()
        _ask(ChatClient(Endpoint(f"http://127.0.0.1:{server.port}/v1")), conversation, "hi", Terminal())
    assert result.code == 0, result.text
    assert result.out == "good answer\n"
    assert conversation.messages("next")[-2] == {"role": "assistant", "content": "good answer"}  # the chat goes on


@pytest.mark.parametrize("name", ["specs.json", "model-facts.json"])
@pytest.mark.parametrize("content", ["[]", '{"key": 1, "payload": []}', "{}"])
def test_a_cache_of_another_shape_is_a_miss(fake, cli, isolated, name, content):
    cache = isolated / "cache" / "airpods" / name
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    rendered = cli("config", "render", "llamacpp", "--json")
    assert rendered.code == 0, rendered.text
    assert cli("status").code == 0


def test_a_manifest_entry_that_is_not_an_object(fake, cli, write_config):
    root = with_models(fake, "m1.gguf")
    (root / ".airpods-models.json").write_text(json.dumps({"m1.gguf": "not an object", "m2.gguf": [1],
                                                           "other.gguf": {"source": "hub://org/repo@main/x"}}))
    listed = cli("models", "list")
    assert listed.code == 0 and "m1.gguf" in listed.out, listed.text
    ran = cli("run", "org/repo:Q4_K_M", "hi")  # looks in the manifest for an earlier pull of it
    assert ran.code != 70 and "internal error" not in ran.err, ran.text


def test_a_stop_timeout_that_is_not_a_number():
    from airpods.health.supervisor import stop_timeout

    state = ContainerState("web-0", "running", labels={"io.airpods.stop-timeout": "ten",
                                                       "io.airpods.managed": "true"})
    assert stop_timeout(state) == 10 and Running.from_state(state).stop_timeout is None
    assert stop_timeout(ContainerState("a", "running", labels={"io.airpods.stop-timeout": "30"})) == 30

"""`airpods run`, `airpods chat` and `airpods models use` without a model server: the conversation's
commands, the streaming client against a local SSE server (an answer stopped closes the
connection), the fit check before any download (hub stand-in, in-memory runtime), the router's
model ids, and config edits that keep every comment."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from pathlib import Path

import pytest

from airpods.chat.client import ChatClient, Endpoint
from airpods.chat.session import Conversation, parse
from airpods.errors import RuntimeFailure
from tests.gguf_builder import llama_like, write_gguf
from tests.helpers import with_models
from tests.hub_standin import serve

F16 = 1


def test_a_conversation_keeps_history_and_knows_its_commands():
    c = Conversation(system="be brief")
    c.answered("My name is Ada.", "Hello Ada.")
    sent = c.messages("What is my name?")
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "My name is Ada." and sent[-1]["content"] == "What is my name?"
    assert parse("/model qwen").kind == "model" and parse("/model qwen").arg == "qwen"
    assert c.apply(parse("/model qwen")) and c.model == "qwen"
    assert parse("/bye").kind == "bye" and parse("  ").kind == "empty" and parse("/nope").kind == "unknown"
    assert parse("//etc is a path").arg == "/etc is a path"  # "//" sends a line that starts with "/"
    c.apply(parse("/clear"))
    assert c.messages("x") == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]
    c.apply(parse("/system"))
    assert c.system is None


class _SSE(http.server.BaseHTTPRequestHandler):
    pieces = 50
    delay = 0.05
    seen: dict = {}
    closed = threading.Event()
    status = 200

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen = {"body": body, "auth": self.headers.get("Authorization")}
        if self.status != 200:
            raw = json.dumps({"error": {"message": "Invalid API Key"}}).encode()
            self.send_response(self.status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for i in range(self.pieces):
                chunk = {"choices": [{"delta": {"content": f"w{i} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.delay)
            final = {"choices": [{"delta": {}, "finish_reason": "stop"}],
                     "timings": {"prompt_n": 3, "prompt_per_second": 100.0, "predicted_n": self.pieces,
                                 "predicted_per_second": 20.0}}
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            type(self).closed.set()  # what llama-server sees when a client stops: it frees the slot

    def log_message(self, *args):
        pass


@pytest.fixture
def sse():
    _SSE.closed = threading.Event()
    _SSE.pieces, _SSE.delay, _SSE.status = 50, 0.05, 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SSE)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_the_client_streams_pieces_as_they_come_with_the_servers_timings(sse):
    _SSE.pieces, _SSE.delay = 5, 0.0
    got = []
    reply = ChatClient(Endpoint(sse, "sk-secret")).stream([{"role": "user", "content": "hi"}], model="m",
                                                           on_text=got.append)
    assert got == [f"w{i} " for i in range(5)] and reply.text == "".join(got) and not reply.stopped
    assert reply.finish_reason == "stop" and "20.0 tokens/s" in reply.stats() and "100.0 tokens/s" in reply.stats()
    assert _SSE.seen["body"]["stream"] is True and _SSE.seen["body"]["model"] == "m"
    assert _SSE.seen["auth"] == "Bearer sk-secret"


def test_a_ctrl_c_while_it_streams_closes_the_connection_and_keeps_what_came(sse):
    count = [0]

    def on_text(piece):
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt  # what a Ctrl-C raises in the reading thread

    began = time.monotonic()
    reply = ChatClient(Endpoint(sse)).stream([{"role": "user", "content": "long"}], on_text=on_text)
    assert reply.stopped and reply.text == "w0 w1 w2 "
    assert time.monotonic() - began < 1.0  # not the whole 2.5 s answer
    assert _SSE.closed.wait(2.0), "the server never saw the connection close"


def test_a_refused_key_is_a_clear_error_that_does_not_show_the_key(sse):
    _SSE.status = 401
    with pytest.raises(RuntimeFailure) as err:
        ChatClient(Endpoint(sse, "apk-do-not-print")).stream([{"role": "user", "content": "x"}])
    text = " ".join([err.value.message, err.value.hint or ""])
    assert "HTTP 401" in text and "AIRPODS_KEY" in text and "apk-do-not-print" not in text


def test_chat_through_the_gateway_needs_a_key_from_the_environment(fake, cli, write_config):
    result = cli("--config", write_config("[services.gateway]\nenabled = true\n"), "chat", "--gateway", "hello")
    assert result.code == 2 and "AIRPODS_KEY" in result.err and "Traceback" not in result.text


def gguf(tmp: Path, name: str, layers: int) -> bytes:
    kv = {**llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192), "general.file_type": 7}
    return write_gguf(tmp / name, kv, [(f"blk.{i}.w", F16, [576, 100]) for i in range(layers)]).read_bytes()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    stand_in, server = serve(monkeypatch, {"org/Fit-GGUF": {"fit-Q4_K_M.gguf": gguf(tmp_path, "s", 2),
                                                            "fit-F16.gguf": gguf(tmp_path, "b", 60)}})
    yield stand_in
    server.shutdown()


def test_run_refuses_a_model_that_does_not_fit_before_downloading_and_names_what_fits(hub, fake, cli,
                                                                                       write_config):
    rows = {r["quant"]: r for r in json.loads(cli("--config", write_config(""), "models", "pull", "org/Fit-GGUF",
                                                  "--list", "--json").out)}
    small, big = rows["Q4_K_M"]["total"], rows["F16"]["total"]
    assert small < big
    path = write_config(f'[runtime]\nmemory_budget = "{(small + big) // 2}b"\n')
    hub.served = 0
    result = cli("--config", path, "run", "org/Fit-GGUF:F16", "Say hi")
    assert result.code == 2, result.text
    assert "does not fit" in result.err and "nothing was downloaded" in result.err
    assert "Q4_K_M" in result.err and "airpods run org/Fit-GGUF:Q4_K_M" in result.err
    assert result.out == "" and "Traceback" not in result.err
    assert hub.served < len(hub.repos["org/Fit-GGUF"]["fit-F16.gguf"])  # headers only
    root = Path(fake.volume_path("airpods_llamacpp_models")) if fake.volume_exists("airpods_llamacpp_models") \
        else None
    assert root is None or not list(root.glob("*.gguf"))
    assert not fake.containers and not fake.pods


def test_run_of_a_name_that_is_not_in_the_volume_lists_what_is(fake, cli, write_config):
    result = cli("--config", write_config(""), "run", "nothing-here", "hi")
    assert result.code == 2 and "no model 'nothing-here'" in result.err and "airpods run ORG/REPO:QUANT" in result.err
    bad = cli("--config", write_config(""), "run", "../etc/passwd", "hi")
    assert bad.code == 2 and "Traceback" not in bad.text


def test_router_ids_for_run_keep_earlier_additions_and_never_collide():
    from dataclasses import dataclass

    from airpods.plan.router import RouterModelSpec, RouterSpec, preset_models, render_preset
    from airpods.stack.targets import router_entry

    @dataclass
    class Spec:
        name: str
        router: RouterSpec

    spec = Spec("r", RouterSpec(models=(RouterModelSpec("smol", "smol.gguf"), RouterModelSpec("b", "x.gguf"))))
    assert router_entry(spec, "smol.gguf", {}) == ("smol", None)
    mid, overlay = router_entry(spec, "b.gguf", {"smol": "smol.gguf", "other": "other.gguf"})
    assert mid == "b-2" and overlay == {"services": {"r": {"models": {"other": {"file": "other.gguf"},
                                                                      "b-2": {"file": "b.gguf"}}}}}
    assert router_entry(spec, "other.gguf", {"other": "other.gguf"})[0] == "other"
    text = render_preset(RouterSpec(models=(RouterModelSpec("a", "a.gguf"), RouterModelSpec("q", "q-1.gguf"))), "r")
    assert preset_models(text) == {"a": "a.gguf", "q": "q-1.gguf"}


CONFIG = """# my airpods config: hand-written
[runtime]
memory_budget = "auto"   # keep

# the main model
[services.llamacpp]
default_model = "SmolLM2-135M-Instruct.Q4_1.gguf"   # the one I use
ctx_size_note = 1
"""


def test_models_use_changes_one_value_and_keeps_every_comment(fake, cli, tmp_path):
    with_models(fake, "qwen-Q4_K_M.gguf")
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.replace("ctx_size_note = 1\n", ""), encoding="utf-8")
    result = cli("--config", str(path), "models", "use", "qwen-Q4_K_M.gguf")
    assert result.code == 0, result.text
    after = path.read_text(encoding="utf-8")
    before = CONFIG.replace("ctx_size_note = 1\n", "")
    assert after == before.replace('"SmolLM2-135M-Instruct.Q4_1.gguf"', '"qwen-Q4_K_M.gguf"')  # byte for byte
    assert '-default_model = "SmolLM2' in result.out and '+default_model = "qwen-Q4_K_M.gguf"' in result.out
    assert "airpods start llamacpp" in result.err


def test_models_use_refuses_a_read_only_file_or_a_templated_model_and_changes_nothing(fake, cli, tmp_path):
    with_models(fake, "qwen-Q4_K_M.gguf")
    path = tmp_path / "config.toml"
    text = CONFIG.replace("ctx_size_note = 1\n", "")
    path.write_text(text, encoding="utf-8")
    path.chmod(0o444)
    result = cli("--config", str(path), "models", "use", "qwen-Q4_K_M.gguf")
    assert result.code == 2 and "read-only" in result.err and path.read_text(encoding="utf-8") == text
    path.chmod(0o644)
    templated = text.replace('"SmolLM2-135M-Instruct.Q4_1.gguf"', '"{{ \'SmolLM2-135M-Instruct.Q4_1.gguf\' }}"')
    path.write_text(templated, encoding="utf-8")
    result = cli("--config", str(path), "models", "use", "qwen-Q4_K_M.gguf")
    assert result.code == 2 and "template" in result.err and path.read_text(encoding="utf-8") == templated
    missing = cli("--config", str(path), "models", "use", "nope.gguf")
    assert missing.code == 2 and "no model 'nope.gguf'" in missing.err


def test_models_use_on_a_router_adds_a_model_table(fake, cli, tmp_path):
    with_models(fake, "qwen-Q4_K_M.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
    path = tmp_path / "config.toml"
    text = ("[services.llamacpp]\nenabled = false\n\n[services.router]  # many models\nkind = \"llamacpp\"\n"
            "mode = \"router\"\nports = [{ host = 18999, container = 8080 }]\nnetwork_aliases = [\"router\"]\n"
            "default_model = \"smol\"\n[services.router.models.smol]\nfile = \"SmolLM2-135M-Instruct.Q4_1.gguf\"\n")
    path.write_text(text, encoding="utf-8")
    result = cli("--config", str(path), "models", "use", "qwen-Q4_K_M.gguf", "--dry-run")
    assert result.code == 0, result.text
    assert "+[services.router.models.qwen-Q4_K_M]" in result.out and path.read_text(encoding="utf-8") == text
    result = cli("--config", str(path), "models", "use", "qwen-Q4_K_M.gguf")
    assert result.code == 0, result.text
    after = path.read_text(encoding="utf-8")
    assert after.startswith(text) and 'file = "qwen-Q4_K_M.gguf"' in after
    listed = json.loads(cli("--config", str(path), "config", "render", "router", "--json").out)
    assert "qwen-Q4_K_M" in json.dumps(listed)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_an_empty_answer_is_said_on_stderr_not_left_silent(sse, capsys):
    import io

    from airpods.cli.chat_loop import one_shot
    from airpods.cli.terminal import Terminal

    _SSE.pieces = 0
    err = io.StringIO()
    reply = one_shot(ChatClient(Endpoint(sse)), Conversation(), "hi", Terminal(stderr=err), verbose=False)
    assert reply.text == "" and capsys.readouterr().out == ""
    assert "answer is empty" in err.getvalue() and "finish_reason stop" in err.getvalue()

"""`airpods run` and `airpods chat` against a real llama-server: from a hub name (a local stand-in
of the hub) to an answer on stdout in one command on a fresh home; run again without a download;
a chat through a pseudo-terminal that streams, remembers, stops an answer on Ctrl-C (the server's
slot is idle again) and leaves on /bye; a router that gets the model as one more."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pexpect
import pytest

from tests.e2e.builders import airpods, api_key, base_router
from tests.hub_standin import serve
from tests.podman_env import free_port, llama_table

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO = "org/Smol-GGUF"


@pytest.fixture
def hub(monkeypatch, smollm2):
    stand_in, server = serve(monkeypatch, {REPO: {FILE: smollm2.read_bytes()}})
    yield stand_in
    server.shutdown()


def single(name: str, port: int) -> str:
    return llama_table(name, "not-pulled-yet.gguf", ctx=2048, port=port)


def answers(*args: str, stdin: str | None = None) -> list[subprocess.CompletedProcess]:
    """The command until it prints an answer, at most three times: the tiny test model at its
    default temperature now and then stops at once (airpods then says so on stderr). Every try
    must exit 0; the last one has the answer."""
    tries = []
    for _ in range(3):
        result = airpods(*args, stdin=stdin)
        tries.append(result)
        assert result.returncode == 0, result.stderr
        if result.stdout.strip():
            return tries
        assert "answer is empty" in result.stderr, result.stderr
    raise AssertionError(f"three empty answers: {tries[-1].stderr}")


def get(url: str, key: str) -> object:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_run_pulls_starts_and_answers_alone_on_stdout_then_again_without_a_download(prun, hub, write_config,
                                                                                     isolated):
    name, port = prun.name("run"), free_port()
    path = write_config(prun.header() + single(name, port))
    tries = answers("--config", path, "run", f"{REPO}:Q4_1", "--service", name, "Say hi")
    first = tries[-1]
    assert first.stdout.strip(), first.stderr
    for noise in ("downloading", "✓", "healthy", "running", "airpods stop"):
        assert noise not in first.stdout  # the answer alone: it pipes
    assert "downloading" in tries[0].stderr and "fits" in tries[0].stderr and f"airpods stop {name}" in first.stderr
    served = hub.served
    assert served >= len(hub.repos[REPO][FILE])

    again = answers("--config", path, "run", f"{REPO}:Q4_1", "--service", name, stdin="Say hi")[-1]  # piped
    assert again.stdout.strip(), again.stderr
    assert hub.served == served and "downloading" not in again.stderr  # nothing fetched the second time
    assert "already" in again.stderr
    [row] = json.loads(airpods("--config", path, "status", name, "--json").stdout)
    assert row["state"] == "running" and FILE in json.dumps(row)
    cut = subprocess.run(["bash", "-c", f'set -o pipefail; "{sys.executable}" -m airpods --config "{path}" run '
                          f'{FILE} --service {name} "Tell a long story." < /dev/null | head -c 5'],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)
    assert cut.returncode == 0 and len(cut.stdout) == 5, cut.stderr  # a reader that goes away is no error
    assert "error" not in cut.stderr and "Traceback" not in cut.stderr


def _slots(port: int, key: str) -> list[dict]:
    return get(f"http://127.0.0.1:{port}/slots", key)  # type: ignore[return-value]


def _last_task(port: int, key: str) -> int:
    return max(s.get("id_task", -1) for s in _slots(port, key))


def _answered(port: int, key: str, before: int, timeout: float = 90) -> int:
    """Wait until the server took a newer task and no slot generates (the answer is complete)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slots = _slots(port, key)
        latest = max(s.get("id_task", -1) for s in slots)
        if latest > before and not any(s["is_processing"] for s in slots):
            return latest
        time.sleep(0.1)
    raise AssertionError("no answer within the time")


def test_the_chat_streams_remembers_stops_on_ctrl_c_and_leaves_on_bye(prun, hub, write_config, isolated):
    name, port = prun.name("chat"), free_port()
    # Every answer 400 tokens (seconds on this machine): the tiny model, left to itself, now and then
    # ends "a very long story" before the screen shows a word or a poll sees its slot busy.
    path = write_config(prun.header() + single(name, port) + "ignore_eos = true\nn_predict = 400\n")
    started = airpods("--config", path, "run", f"{REPO}:Q4_1", "--service", name, "Say hi")
    assert started.returncode == 0, started.stderr
    key = api_key(isolated, name)
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    chat = pexpect.spawn(sys.executable, ["-m", "airpods", "--config", path, "chat", name], env=env,
                         encoding="utf-8", timeout=90, dimensions=(50, 200))
    try:
        chat.expect(">>>")
        before = _last_task(port, key)
        chat.sendline("My name is Zorblax and I live in a lighthouse by the sea. Reply with one word.")
        before = _answered(port, key, before)
        chat.sendline("What is my name?")
        _answered(port, key, before)
        # The slot that answered it: the watcher's health probe (a one-token "Hi") may have run a
        # task since, so not simply the newest task's slot.
        latest = max((s for s in _slots(port, key) if s.get("id_task", -1) > before),
                     key=lambda s: s.get("n_prompt_tokens", 0))
        # The second question went with the first and its answer: its prompt is longer than it alone.
        alone = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps({
                "messages": [{"role": "user", "content": "What is my name?"}], "max_tokens": 1}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}), timeout=60).read())
        assert latest["n_prompt_tokens"] > alone["usage"]["prompt_tokens"] + 20, (latest, alone["usage"])

        chat.sendline("Write a very long story about a dragon and a knight, at least 3000 words.")
        deadline = time.monotonic() + 30
        while not any(s["is_processing"] for s in _slots(port, key)):  # the server is generating the answer
            assert time.monotonic() < deadline, "the question never reached the server"
            time.sleep(0.05)
        chat.expect(pexpect.TIMEOUT, timeout=0.5)  # the echo of the question, and whatever came with it
        chat.expect(r"[A-Za-z]{3,}")  # more words of the answer reach the screen ...
        busy = [s for s in _slots(port, key) if s["is_processing"]]
        assert busy, "the answer was complete before any of it showed: not streamed"  # ... while it is generated
        chat.sendintr()
        stopped_at = time.monotonic()
        while any(s["is_processing"] for s in _slots(port, key)):
            assert time.monotonic() - stopped_at < 2.0, "the server is still generating 2 s after Ctrl-C"
            time.sleep(0.05)
        chat.expect(r"\[stopped\]")
        chat.expect(">>>")  # the session goes on
        chat.sendline("/bye")
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
    assert (isolated / "data" / "airpods" / "chat-history").stat().st_mode & 0o777 == 0o600


def test_run_adds_the_model_to_an_enabled_router_and_it_is_loaded(prun, hub, write_config, smollm2, tmp_path):
    name, port = prun.name("rtr"), free_port()
    path = write_config(prun.header() + base_router(name, port))
    third = tmp_path / "third.gguf"
    shutil.copy(smollm2, third)
    for src, as_name in ((smollm2, "base.gguf"), (third, "third.gguf")):
        imported = airpods("--config", path, "models", "import", str(src), "--name", as_name)
        assert imported.returncode == 0, imported.stderr
    first = answers("--config", path, "run", f"{REPO}:Q4_1", "Say hi")  # the router is the default target
    assert f"router {name}" in first[0].stderr
    live = answers("--config", path, "run", "third", "Say hi")  # the router runs: added without a restart
    assert not any("recreating" in t.stderr for t in live)
    rows = {r["id"]: r for r in json.loads(airpods("--config", path, "models", "ps", "--json").stdout)}
    model_id = FILE.removesuffix(".gguf")
    assert rows[model_id]["state"] == "loaded" and rows[model_id]["file"] == FILE
    assert rows["third"]["state"] == "loaded" and rows["third"]["file"] == "third.gguf"
    assert "base" in rows  # the config's own model is still there

"""What `--metrics` (on by default) costs: generation tokens/s of the same model, argv and prompt
with metrics on, on while a poller reads /metrics and /slots once a second as `airpods top` does,
and off; one service running at a time, rounds alternating."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request

from benchmarks.common import Env, Series
from benchmarks.contention import _generate

ROUNDS_PER_START = 3


def _poll(port: int, key: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for path in ("/metrics", "/slots"):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=2).read()


def metrics_cost(env: Env, runs: int) -> dict[str, Series]:
    text = env.render_config(enabled=2)
    env.config.write_text(text.replace("[services.bench2]\n", "[services.bench2]\nmetrics = false\n", 1))
    out = {"on": Series("generation tokens/s, --metrics on"),
           "polled": Series("generation tokens/s, --metrics on, polled as top does"),
           "off": Series("generation tokens/s, metrics = false")}
    try:
        for _ in range(runs):
            for name, which in (("bench1", "on"), ("bench1", "polled"), ("bench2", "off")):
                env.run("start", name)
                spec = env.render(name)
                assert ("--metrics" in spec["command"]) == (which != "off"), spec["command"]
                port, key = spec["ports"][0]["host"], spec["env"]["LLAMA_API_KEY"]
                _generate(port, key, time.monotonic() + 600, 16)  # warm-up
                stop = threading.Event()
                poller = threading.Thread(target=_poll, args=(port, key, stop), daemon=True)
                if which == "polled":
                    poller.start()
                for _ in range(ROUNDS_PER_START):
                    out[which].samples.append(_generate(port, key, time.monotonic() + 600)[1])
                stop.set()
                env.run("stop", name)
        return out
    finally:
        env.config.write_text(env.render_config())

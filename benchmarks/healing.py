"""How long a frozen llama-server stays unanswered: SIGSTOP its process, then time until a
one-token completion answers again (found by the health check, restarted by Podman), against
the configured bound interval x retries + start period. The restart of a frozen process also sits
out the stop timeout (SIGTERM cannot reach it), set here to 2 s and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

from benchmarks.common import Env, Series

INTERVAL, RETRIES, START_PERIOD, PROBE_TIMEOUT, STOP_TIMEOUT = 2, 2, 5, 2, 2
HEALTH = (f'health = {{ path = "/health", timeout = 120, interval = {INTERVAL}, retries = {RETRIES}, '
          f"start_period = {START_PERIOD}, probe_timeout = {PROBE_TIMEOUT}, max_restarts = 100 }}")  # runs in a row


def _answers(port: int, key: str) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=json.dumps(
        {"prompt": "Hi", "n_predict": 1}).encode(), headers={"Authorization": f"Bearer {key}",
                                                               "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=1.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _pid(container: str) -> int:
    """The server's process (under Podman's init, which is State.Pid)."""
    from airpods.probes.caps import main_process

    out = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", container], capture_output=True,
                         text=True, check=False)
    pid = int(out.stdout.strip() or 0)
    return main_process(pid) if pid else 0


def recovery(env: Env, runs: int) -> dict[str, Series]:
    text = env.render_config(enabled=1, extra=f"stop_timeout = {STOP_TIMEOUT}")
    env.config.write_text(text.replace('health = { path = "/health", timeout = 120 }', HEALTH, 1))
    bound = INTERVAL * RETRIES + START_PERIOD
    out = {"recovery": Series("frozen -> answering again (stop timeout 2 s)"),
           "bound": Series(f"configured bound: {INTERVAL} s x {RETRIES} + {START_PERIOD} s")}
    try:
        env.run("start", "bench1")
        spec = env.render("bench1")
        port, key, container = spec["ports"][0]["host"], spec["env"]["LLAMA_API_KEY"], spec["container"]
        for _ in range(runs):
            while not _answers(port, key):
                time.sleep(0.2)
            time.sleep(INTERVAL)  # a check or two while healthy
            pid = _pid(container)
            os.kill(pid, signal.SIGSTOP)
            frozen = time.monotonic()
            deadline = frozen + 10 * bound
            while time.monotonic() < deadline and not (_pid(container) not in (0, pid) and _answers(port, key)):
                time.sleep(0.1)
            out["recovery"].samples.append(time.monotonic() - frozen)
            out["bound"].samples.append(float(bound))
            time.sleep(START_PERIOD + 1)  # past the start period of the restarted one
        env.run("stop", "bench1")
        return out
    finally:
        env.config.write_text(env.render_config())

"""What an idle stack costs (issue 42): one healthy llama.cpp service and nothing else happening,
the CPU time used in a quiet minute by airpods' watcher and by the Podman API service it talks to
(its own, started here on a private socket, so that nothing else's calls are counted), in CPU
seconds per minute of wall time:

- events: today's watcher, waiting on Podman's event stream (its health check is set to a
  300 s interval, so that no check falls in the window: the checks themselves are excepted);
- polling: the watcher as it was, in the same run: list + inspect + its ledger every 0.5 s,
  the loop it had, run against the same service (the event watcher stopped meanwhile);
- no client: the API service alone, nobody connected (the floor an open stream cannot go under);
- router, one pinned model: the event watcher touching the pin every 0.5 s, the API service idle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Env, Series

HEALTH = 'health = { path = "/health", timeout = 120, interval = 300 }'
POLLER = """
import sys, time
from airpods.health.supervisor import Ledger, watched
from airpods.runtime.owned import OwnedRuntime
from airpods.runtime.podman_adapter import PodmanRuntime
import os
rt = OwnedRuntime(PodmanRuntime(sys.argv[1]), os.environ)
ledger = sys.argv[2]
from pathlib import Path
while True:  # the loop the watcher had before it waited on events
    items = [(svc, rt.inspect(s.name) or s, p) for svc, s, p in watched(rt.list_managed(), sys.argv[3])]
    with Ledger.locked(Path(ledger)) as records:
        pass
    time.sleep(0.5)
"""


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_minute(pids: list[int], seconds: float) -> float:
    before = sum(_cpu(p) for p in pids)
    time.sleep(seconds)
    return (sum(_cpu(p) for p in pids) - before) * 60.0 / seconds


def _watcher_pid(env: Env) -> int:
    pid_file = Path(env.env["XDG_DATA_HOME"]) / "airpods" / "health" / "bench.pid"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text().strip() or 0)
            if pid and b"watch" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("no watcher after the start")


def idle_cost(env: Env, window: float, runs: int) -> dict[str, Series]:
    sock = env.tmp / "podman-api.sock"
    api = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    while not sock.exists():
        time.sleep(0.05)
    env.env["CONTAINER_HOST"] = f"unix://{sock}"
    out = {k: Series(f"CPU s per idle minute: {v}") for k, v in (
        ("events", "watcher + API service (events)"), ("polling", "watcher + API service (0.5 s polling, as before)"),
        ("alone", "API service alone, no client"), ("router", "watcher + API service, router with a pinned model"))}
    ledger = Path(env.env["XDG_DATA_HOME"]) / "airpods" / "health" / "bench.json"
    try:
        env.config.write_text(env.render_config(enabled=1).replace('health = { path = "/health", timeout = 120 }',
                                                                     HEALTH, 1))
        env.run("start", "bench1")
        for _ in range(runs):
            watcher = _watcher_pid(env)
            time.sleep(2)
            out["events"].samples.append(_per_minute([watcher, api.pid], window))
            os.kill(watcher, signal.SIGTERM)
            time.sleep(1)
            out["alone"].samples.append(_per_minute([api.pid], window))
            poller = subprocess.Popen([sys.executable, "-c", POLLER, f"unix://{sock}", str(ledger), "bench"],
                                      env=env.env)
            time.sleep(2)
            out["polling"].samples.append(_per_minute([poller.pid, api.pid], window))
            poller.kill()
            poller.wait()
            env.run("start", "bench1")  # running already: it leaves a watcher again
        env.run("stop", "bench1")
        own_model = 'default_model = "SmolLM2-135M-Instruct.Q4_1.gguf"'
        router = env.render_config(enabled=1).replace(own_model, 'mode = "router"\ndefault_model = "pinned"', 1)
        router = router.replace(
            'model = "/models/{{ default_model }}"\nalias = "{{ default_model | replace(\'.gguf\', \'\') }}"\n', "", 1)
        router = router.replace('health = { path = "/health", timeout = 120 }', HEALTH, 1)
        router += '\n[services.bench1.models.pinned]\nfile = "SmolLM2-135M-Instruct.Q4_1.gguf"\npin = true\n'
        env.config.write_text(router)
        env.run("start", "bench1")
        for _ in range(runs):
            watcher = _watcher_pid(env)
            time.sleep(2)
            out["router"].samples.append(_per_minute([watcher, api.pid], window))
        env.run("stop", "bench1")
        return out
    finally:
        env.env.pop("CONTAINER_HOST", None)
        env.run("stop", "--remove", "--timeout", "2", check=False)
        env.config.write_text(env.render_config())
        os.killpg(api.pid, signal.SIGKILL)

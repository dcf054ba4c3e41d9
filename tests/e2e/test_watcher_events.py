"""The health watcher on Podman's event stream, with real Podman and a real llama-server (issue
40, items 1 and 6; issue 42): a crash loop after `start --no-wait` is capped and shown; a start
killed during its health wait leaves the service watched, its hold gone with it; a server killed
from outside is noticed within a second (an event, not a poll)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.builders import MODEL, health_config, host_pid, status_of, wait_until
from tests.podman_env import podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def restart_count(container: str) -> int:
    return int(podman("inspect", "--format", "{{.RestartCount}}", container).stdout.strip() or 0)


def ledger_of(isolated, prun) -> dict:
    path = isolated / "data" / "airpods" / "health" / f"t{prun.id}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_a_crash_loop_after_start_no_wait_is_capped_and_status_shows_it(prun, cli, write_config, smollm2):
    """Issue 40, item 1: it used to restart ~6 times a second until `stop` (695 in 120 s), with
    `status` saying stopped, 0 restarts. Bound: restarts <= max_restarts + 2 within a minute."""
    name = prun.name("crashloop")
    path = write_config(health_config(prun, name, {"entrypoint_override": ["/bin/sh", "-c", "exit 3"]},
                                      max_restarts=2, interval=5))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    started = cli("--config", path, "start", name, "--no-wait")
    assert started.code == 0, started.text
    container = status_of(cli, path, name)["container"]
    row = wait_until(lambda: (r := status_of(cli, path, name))["state"] != "running" and r["restarts"] and r, 60)
    assert row, status_of(cli, path, name)
    counts = [restart_count(container)]
    while len(counts) < 3 or counts[-1] != counts[-3]:  # the restarts already under way when it stopped
        time.sleep(1)
        counts.append(restart_count(container))
        assert len(counts) < 20, counts
    settled = counts[-1]
    time.sleep(5)  # and nothing restarts it any more
    assert restart_count(container) == settled
    final = status_of(cli, path, name)
    assert final["state"] in ("stopped", "exited") and 2 <= final["restarts"] <= 2 + 2, final
    # Podman's own count: airpods stops it at the exit after the 2nd restart (its "died" event), and
    # Podman 4.3 restarts it 2-5 times more while the stop lands (its restart policy races the stop
    # and its locks are busy with the loop: 4 of 6 runs ended at 4, the others at 5-7, measured).
    assert settled <= 2 + 5, f"{settled} restarts"
    assert "code 3" in final["last_failure"]["reason"] and "max_restarts = 2" in final["last_failure"]["reason"]
    assert "stopped by airpods" in cli("--config", path, "status", name).out


def test_a_start_killed_during_its_health_wait_leaves_the_service_watched(prun, cli, write_config, smollm2,
                                                                          isolated):
    """Issue 40, item 6: no watcher and no checks after such a kill, and a 900 s hold left in the
    ledger. Now the watcher is there before anything starts, and the hold ends with the start."""
    name = prun.name("killedstart")
    path = write_config(health_config(prun, name))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    start = subprocess.Popen([sys.executable, "-m", "airpods", "--config", path, "start", name],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    container = None
    try:
        def running() -> str | None:
            out = podman("ps", "--filter", f"label=io.airpods.service={name}", "--format",
                         "{{.Names}} {{.IsInfra}}", check=False).stdout.splitlines()
            return next((line.split()[0] for line in out if line.endswith("false")), None)

        container = wait_until(running, 60, step=0.05)
        assert container, "the start never started the container"
        assert start.poll() is None, "the start ended before it could be killed in its wait"
    finally:
        start.send_signal(signal.SIGKILL)
        start.wait()
    checks = wait_until(lambda: int(podman("inspect", "--format", "{{len .State.Healthcheck.Log}}", container,
                                           check=False).stdout.strip() or 0) >= 2, 20)
    assert checks, "no health check ran after the start was killed"
    assert all(r.get("hold_until", 0) < time.time() for r in ledger_of(isolated, prun).values()), \
        ledger_of(isolated, prun)
    pid = host_pid(container)
    os.kill(pid, signal.SIGKILL)  # and a restart is counted: nothing holds it
    row = wait_until(lambda: (r := status_of(cli, path, name))["restarts"] and r, 20)
    assert row and row["restarts"] == 1, status_of(cli, path, name)


def test_a_server_killed_from_outside_is_noticed_within_a_second(prun, cli, write_config, smollm2, isolated):
    """Issue 42: the watcher learns of it from Podman's events (it used to look every 0.5 s; it
    now sleeps until a check is due: interval 2 s here, so only an event can make the bound)."""
    name = prun.name("noticed")
    path = write_config(health_config(prun, name, interval=30))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    assert cli("--config", path, "start", name).code == 0
    container = status_of(cli, path, name)["container"]
    time.sleep(1)
    pid = host_pid(container)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    seen = wait_until(lambda: ledger_of(isolated, prun).get(name, {}).get("restarts"), 10, step=0.01)
    took = time.monotonic() - killed
    assert seen == 1, ledger_of(isolated, prun)
    assert took <= 1.0, f"noticed after {took:.2f} s"
    doctor = json.loads(cli("--config", path, "doctor", "--json").out)["health"]
    watcher = doctor["watcher"]  # what it costs and what it waits for (issue 42)
    assert watcher["events"] >= 2 and watcher["cpu_percent"] >= 0 and watcher["over_seconds"] > 0, watcher
    assert watcher["next"]["what"] == f"health check of {name}" and watcher["next"]["in_seconds"] <= 30, watcher

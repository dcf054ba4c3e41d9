"""Health after start, with a real llama-server in real Podman: a frozen server (SIGSTOP) is
found by its health check and restarted by Podman; a server killed again and again is left
stopped and reported; the probe's key is in no `podman inspect` output and no log line.

This machine has no systemd timers, so the checks run from the watcher `start` leaves behind
(as on any host without them); the restart itself is Podman's (on-failure = restart)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.builders import HEALTH, api_key, health_config, host_pid, status_of, wait_until
from tests.podman_env import podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
INTERVAL, RETRIES, START_PERIOD, PROBE_TIMEOUT = (HEALTH[k] for k in ("interval", "retries", "start_period",
                                                                      "probe_timeout"))


def answers(url: str, key: str) -> bool:
    body = json.dumps({"prompt": "Hi", "n_predict": 1}).encode()
    req = urllib.request.Request(url.removesuffix("/v1") + "/completion", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=1.5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def test_a_frozen_server_is_restarted_by_podman_and_reported(prun, cli, write_config, smollm2, isolated):
    name = prun.name("frozen")
    path = write_config(health_config(prun, name))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    started = cli("--config", path, "start", name)
    assert started.code == 0, started.text
    row, key = status_of(cli, path, name), api_key(isolated, name)
    assert answers(row["url"], key) and row["restarts"] == 0
    pid = host_pid(row["container"])
    os.kill(pid, signal.SIGSTOP)  # running, not answering
    frozen = time.monotonic()
    time.sleep(0.5)
    assert not answers(row["url"], key)
    bound = INTERVAL * RETRIES + START_PERIOD + 3  # + the stop timeout a frozen process sits out (header: 3 s)
    assert wait_until(lambda: answers(row["url"], key), bound + 10), "not answering again"
    took = time.monotonic() - frozen
    assert host_pid(row["container"]) != pid
    after = wait_until(lambda: (r := status_of(cli, path, name))["restarts"] and r, 5)
    assert after and after["restarts"] == 1 and after["state"] == "running", after
    reason = after["last_failure"]["reason"]
    assert "unhealthy" in reason and "/health did not answer" in reason, reason
    assert took <= bound + 10, took


def test_a_server_killed_again_and_again_is_left_stopped_and_reported(prun, cli, write_config, smollm2, isolated):
    name = prun.name("crashy")
    path = write_config(health_config(prun, name, max_restarts=4))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    assert cli("--config", path, "start", name).code == 0
    container = status_of(cli, path, name)["container"]
    for attempt in range(5):
        pid = wait_until(lambda: host_pid(container), 20)
        assert pid, f"not running before kill {attempt + 1}"
        os.kill(pid, signal.SIGKILL)
        if attempt < 4:  # the restart policy brings it back, each time a new process
            back = wait_until(lambda old=pid: host_pid(container) not in (0, old), 20)
            assert back, f"no restart after kill {attempt + 1}"
    stopped = wait_until(lambda: (r := status_of(cli, path, name))["state"] != "running" and r, 15)
    assert stopped, status_of(cli, path, name)
    time.sleep(4)  # and it stays so: nothing restarts it
    final = status_of(cli, path, name)
    assert final["state"] == "stopped" and final["restarts"] == 5, final
    assert "stopped by airpods after 5 restarts in a row" in final["last_failure"]["reason"]
    assert "max_restarts = 4" in final["last_failure"]["reason"]
    table = cli("--config", path, "status", name)
    assert "5 restarts" in table.out and "stopped by airpods" in table.out
    again = cli("--config", path, "start", name)  # a start gives it a new chance
    assert again.code == 0, again.text
    assert status_of(cli, path, name)["restarts"] == 0


def test_the_probe_key_is_in_no_inspect_output_and_no_log_line(prun, cli, write_config, smollm2, isolated):
    name = prun.name("keyed")
    path = write_config(health_config(prun, name))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    assert cli("--config", path, "start", name).code == 0
    container = status_of(cli, path, name)["container"]
    probe_key = (isolated / "data" / "airpods" / "secrets" / f"{name}-health-key").read_text().strip()
    assert len(probe_key) >= 32
    ran = wait_until(lambda: len(json.loads(podman("inspect", container).stdout)[0]["State"]["Health"]["Log"]
                                 or []) >= 2, INTERVAL * 4)
    assert ran, "the check did not run"
    [data] = json.loads(podman("inspect", container).stdout)
    assert data["State"]["Health"]["Status"] == "healthy"  # the probe's key was accepted
    assert all(run["ExitCode"] == 0 for run in data["State"]["Health"]["Log"])
    texts = [podman("inspect", container).stdout, podman("pod", "inspect", name).stdout,
             podman("logs", container).stdout + podman("logs", container).stderr,
             (isolated / "data" / "airpods" / "health" / f"t{prun.id}.log").read_text()]
    for text in texts:
        assert probe_key not in text
    check = data["Config"]["Healthcheck"]["Test"][1]
    assert "/run/airpods/health.key" in check and "/completion" in check

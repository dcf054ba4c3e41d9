"""The lifecycle against real Podman with a tiny busybox image (no mocks)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.integration.builders import SERVE, WEB, web_config
from tests.podman_env import BUSYBOX_IMAGE, free_port, podman

pytestmark = pytest.mark.podman


def container_id(name: str) -> str:
    return podman("inspect", "--format", "{{.Id}}", f"{name}-0").stdout.strip()


def test_start_status_alias_logs_and_volume_survives(prun, cli, write_config):
    path, svc, port = web_config(prun, write_config)
    result = cli("--config", path, "start", svc)
    assert result.code == 0, result.text
    assert "healthy" in result.text and f"http://127.0.0.1:{port}" in result.out

    # The network alias resolves from a second container on the same network.
    probe = podman("run", "--rm", "--network", prun.network, BUSYBOX_IMAGE, "wget", "-qO-",
                   f"http://{svc}:8080/health")
    assert probe.stdout.strip() == "ok"

    # Published on 127.0.0.1 only.
    ports = podman("pod", "inspect", svc, "--format", "{{json .InfraConfig.PortBindings}}").stdout
    assert '"HostIp":"127.0.0.1"' in ports.replace(" ", "")

    status = cli("--config", path, "status", svc, "--json")
    assert status.code == 0, status.text
    [row] = json.loads(status.out)
    assert {k: row[k] for k in ("service", "state", "health", "pod", "container")} == {
        "service": svc, "state": "running", "health": "healthy", "pod": svc, "container": f"{svc}-0"}
    assert row["url"] == f"http://127.0.0.1:{port}" and row["image"] == BUSYBOX_IMAGE and "model" in row

    logs = cli("--config", path, "logs", svc, "-n", "20")
    assert logs.code == 0 and "started hello" in logs.out

    podman("exec", f"{svc}-0", "sh", "-c", "echo persisted > /data/file")
    stopped = cli("--config", path, "stop", svc, "--remove")
    assert stopped.code == 0, stopped.text
    assert podman("pod", "exists", svc, check=False).returncode == 1
    assert podman("volume", "exists", f"{svc}_data", check=False).returncode == 0
    assert cli("--config", path, "status", svc, "--json").out.count('"absent"') == 1

    assert cli("--config", path, "start", svc).code == 0
    assert podman("exec", f"{svc}-0", "cat", "/data/file").stdout.strip() == "persisted"


def test_unchanged_spec_is_noop_and_changed_spec_recreates(prun, cli, write_config):
    path, svc, port = web_config(prun, write_config)
    assert cli("--config", path, "start", svc).code == 0
    first = container_id(svc)
    again = cli("--config", path, "start", svc)
    assert again.code == 0 and "already running" in again.text
    assert container_id(svc) == first

    path2, _, _ = web_config(prun, write_config, greeting="changed", port=port)
    changed = cli("--config", path2, "start", svc)
    assert changed.code == 0, changed.text
    assert "recreat" in changed.text
    assert container_id(svc) != first
    assert "started changed" in cli("--config", path2, "logs", svc).out

    stopped = cli("--config", path2, "stop", svc)
    assert stopped.code == 0 and podman("inspect", "--format", "{{.State.Status}}", f"{svc}-0").stdout.strip() in (
        "exited", "stopped")
    restarted = cli("--config", path2, "start", svc)
    assert restarted.code == 0 and container_id(svc) != first


def test_container_exiting_during_startup_fails_fast_with_its_log(prun, cli, write_config):
    path, svc, _ = web_config(prun, write_config, script="echo about to fail on purpose; exit 3", timeout=60)
    began = time.monotonic()
    result = cli("--config", path, "start", svc)
    elapsed = time.monotonic() - began
    assert result.code == 1, result.text
    assert elapsed < 10, f"took {elapsed:.1f}s; a crash must not wait for the 60 s timeout"
    assert "exit code 3" in result.err and "about to fail on purpose" in result.err
    assert "Traceback" not in result.text


def test_health_timeout_exits_1_with_log_tail(prun, cli, write_config):
    script = "trap 'exit 0' TERM; echo never serving; sleep 3600 & wait"
    path, svc, _ = web_config(prun, write_config, script=script, timeout=1.5)
    began = time.monotonic()
    result = cli("--config", path, "start", svc)
    assert result.code == 1, result.text
    assert 1.4 < time.monotonic() - began < 15
    assert "not healthy after 1.5s" in result.err and "never serving" in result.err
    overridden = cli("--config", path, "start", svc, "--timeout", "0.5")
    assert overridden.code == 1 and "not healthy after 0.5s" in overridden.err


def test_busy_port_exits_2_and_creates_nothing(prun, cli, write_config):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        path, svc, _ = web_config(prun, write_config, port=port)
        result = cli("--config", path, "start", svc)
        assert result.code == 2, result.text
        assert str(port) in result.err and svc in result.err
    finally:
        holder.close()
    assert podman("pod", "exists", svc, check=False).returncode == 1
    assert podman("volume", "exists", f"{svc}_data", check=False).returncode == 1
    assert podman("network", "exists", prun.network, check=False).returncode == 1


def test_pre_fetch_reports_present_and_fails_fast_on_unreachable_registry(prun, cli, write_config):
    path, svc, _ = web_config(prun, write_config)
    present = cli("--config", path, "start", "--pre-fetch", svc)
    assert present.code == 0 and "already present" in present.err
    assert podman("pod", "exists", svc, check=False).returncode == 1  # started nothing

    bad = prun.name("unreachable")
    text = Path(path).read_text() + f'\n[services.{bad}]\nimage = "quay.io/airpods-test/does-not-exist:1"\n'
    path2 = write_config(text)
    began = time.monotonic()
    result = cli("--config", path2, "start", "--pre-fetch", bad)
    assert result.code == 1, result.text
    assert time.monotonic() - began < 20
    assert "quay.io/airpods-test/does-not-exist:1" in result.err
    assert podman("pod", "exists", bad, check=False).returncode == 1


def test_unknown_service_is_a_usage_error(prun, cli, write_config):
    path, svc, _ = web_config(prun, write_config)
    result = cli("--config", path, "start", "nope")
    assert result.code == 2 and "unknown service 'nope'" in result.err


def test_logs_follow_ends_cleanly_on_ctrl_c(prun, write_config):
    import os
    import signal
    import subprocess
    import sys

    path, svc, _ = web_config(prun, write_config)
    env = {**os.environ}
    assert subprocess.run([sys.executable, "-m", "airpods", "--config", path, "start", svc], env=env,
                          capture_output=True, check=False).returncode == 0
    # As at a terminal: a process started from a background job (nohup ... &, as CI may run us)
    # inherits SIGINT as *ignored*, and Python then installs no KeyboardInterrupt handler.
    argv = ["airpods", "--config", path, "logs", "-f", svc]
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = {argv!r}; runpy.run_module('airpods', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "started hello" in first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err


def test_clean_deletes_volumes_only_when_asked_and_confirmed(prun, cli, write_config):
    path, svc, _ = web_config(prun, write_config)
    assert cli("--config", path, "start", svc).code == 0
    volume = f"{svc}_data"
    assert cli("--config", path, "clean", svc).code == 0  # no --volumes: data stays
    assert podman("pod", "exists", svc, check=False).returncode == 1
    assert podman("volume", "exists", volume, check=False).returncode == 0
    refused = cli("--config", path, "clean", svc, "--volumes")  # no TTY, no --yes
    assert refused.code == 2 and volume in refused.err
    assert podman("volume", "exists", volume, check=False).returncode == 0
    done = cli("--config", path, "clean", svc, "--volumes", "--yes")
    assert done.code == 0 and f"deleted volume {volume}" in done.err
    assert podman("volume", "exists", volume, check=False).returncode == 1


def test_start_after_only_the_container_was_stopped(prun, cli, write_config):
    # The pod's infra keeps its host port open (conmon); that is not "busy" for this service.
    path, svc, port = web_config(prun, write_config)
    assert cli("--config", path, "start", svc).code == 0
    podman("stop", "-t", "1", f"{svc}-0")
    again = cli("--config", path, "start", svc)
    assert again.code == 0, again.text
    assert "healthy" in again.text


def test_clean_without_names_leaves_disabled_services_data_alone(prun, cli, write_config):
    path, svc, _ = web_config(prun, write_config)
    other = prun.name("other")
    text = Path(path).read_text() + f'\n[services.{other}]\nenabled = false\nimage = "{BUSYBOX_IMAGE}"\n' \
        f'volumes = [{{ source = "{other}_data", target = "/data" }}]\n'
    path2 = write_config(text)
    podman("volume", "create", "--label", f"io.airpods.test={prun.id}", f"{other}_data")
    assert cli("--config", path2, "start", svc).code == 0
    result = cli("--config", path2, "clean", "--volumes", "--yes")
    assert result.code == 0, result.text
    assert podman("volume", "exists", f"{svc}_data", check=False).returncode == 1
    assert podman("volume", "exists", f"{other}_data", check=False).returncode == 0  # disabled, no container


def test_logs_follow_outlasts_a_silent_minute(prun, write_config):
    """Podman's client timeout (60 s) used to end `logs -f` on a quiet service with a read timeout."""
    import os
    import signal
    import subprocess
    import sys

    path, svc, _ = web_config(prun, write_config)
    assert subprocess.run([sys.executable, "-m", "airpods", "--config", path, "start", svc],
                          capture_output=True, check=False).returncode == 0
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = {['airpods', '--config', path, 'logs', '-f', svc]!r}; "
            "runpy.run_module('airpods', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert "started hello" in proc.stdout.readline()
    began = time.monotonic()
    while time.monotonic() - began < 75:  # the service prints nothing more
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err and "timed out" not in err


def test_another_project_with_the_same_names_cannot_touch_this_one(prun, cli, write_config):
    """Two configs on one machine (a test stack and the real one): every command of the second
    leaves the first one's pod, container and volume as they are."""
    path, svc, port = web_config(prun, write_config)
    assert cli("--config", path, "start", svc).code == 0
    before = container_id(svc)
    started = podman("inspect", "--format", "{{.State.StartedAt}}", f"{svc}-0").stdout
    other = write_config(Path(path).read_text().replace(f'project = "t{prun.id}"', f'project = "u{prun.id}"')
                         .replace(f"host = {port}", f"host = {free_port()}"))
    refused = cli("--config", other, "start", svc)
    assert refused.code == 2 and f"belongs to the airpods project 't{prun.id}'" in refused.err
    for command in (["status"], ["stop"], ["stop", svc, "--remove"], ["clean"], ["clean", "--volumes", "--yes"],
                    ["logs", svc]):
        result = cli("--config", other, *command)
        assert result.code in (0, 2) and "Traceback" not in result.text, (command, result.text)
    assert container_id(svc) == before
    assert podman("inspect", "--format", "{{.State.StartedAt}}", f"{svc}-0").stdout == started
    assert podman("inspect", "--format", "{{.State.Running}}", f"{svc}-0").stdout.strip() == "true"
    assert podman("volume", "exists", f"{svc}_data", check=False).returncode == 0


def test_renamed_pod_is_orphaned_then_stopped_and_cleaned(prun, cli, write_config):
    path, svc, port = web_config(prun, write_config)
    assert cli("--config", path, "start", svc).code == 0
    renamed = write_config(Path(path).read_text().replace(f"[services.{svc}]", f'[services.{svc}]\npod = "{svc}-new"'))
    status = cli("--config", renamed, "status", "--json")
    rows = {r["pod"]: r for r in json.loads(status.out)}
    assert rows[svc]["orphaned"] and rows[svc]["state"] == "running", status.out
    assert cli("--config", renamed, "stop").code == 0
    assert podman("inspect", "--format", "{{.State.Running}}", f"{svc}-0").stdout.strip() == "false"
    assert cli("--config", renamed, "clean").code == 0
    assert podman("pod", "exists", svc, check=False).returncode == 1


def test_a_crash_fails_the_start_at_once_while_a_sibling_waits_for_health(prun, cli, write_config):
    crash = prun.name("crash")
    slow = prun.name("slow")
    text = prun.header() + WEB.format(name=crash, image=BUSYBOX_IMAGE, port=free_port(), volume=f"{crash}_data",
                                      timeout=300, script="echo bad flag; exit 3", greeting="x")
    text += WEB.format(name=slow, image=BUSYBOX_IMAGE, port=free_port(), volume=f"{slow}_data", timeout=300,
                       script=SERVE, greeting="x").replace('path = "/health"', 'path = "/never"')
    path = write_config(text)
    began = time.monotonic()
    result = cli("--config", path, "start", crash, slow)
    took = time.monotonic() - began
    assert result.code == 1 and f"service '{crash}' exited during startup (exit code 3)" in result.err, result.text
    assert took < 10, f"took {took:.1f}s"


def test_two_projects_with_the_same_service_name_run_side_by_side(prun, cli, write_config):
    """Issue 29 item 5, on real Podman: two configs (projects) that both name a service `web`, with
    nothing else set, get pods and containers named after their project and a network each; both
    run, each sees only its own, and stopping one leaves the other running."""
    made = []
    for side in ("a", "b"):
        header = prun.header(project=f"t{prun.id}{side}", plain_names=False, own_network=False)
        body = WEB.format(name="web", image=BUSYBOX_IMAGE, port=free_port(), volume=f"web_{prun.id}{side}_data",
                          timeout=20, script=SERVE, greeting=side)
        made.append((write_config(header + body), f"t{prun.id}{side}"))
    try:
        for path, project in made:
            result = cli("--config", path, "start", "web")
            assert result.code == 0, result.text
            [row] = json.loads(cli("--config", path, "status", "--json").out)
            assert (row["pod"], row["container"], row["state"]) == (f"{project}-web", f"{project}-web-0", "running")
            network = podman("inspect", "--format", "{{json .NetworkSettings.Networks}}", f"{project}-web-0").stdout
            assert f"airpods-{project}" in network
        assert cli("--config", made[0][0], "stop", "--remove").code == 0
        assert podman("pod", "exists", f"{made[0][1]}-web", check=False).returncode != 0
        state = podman("inspect", "--format", "{{.State.Running}}", f"{made[1][1]}-web-0").stdout.strip()
        assert state == "true"
    finally:
        for path, project in made:  # (the volumes carry the run's label: prun's clean-up takes them)
            cli("--config", path, "stop", "--remove", "--timeout", "1")
            podman("network", "rm", "-f", f"airpods-{project}", check=False)

"""The CPU plan and honest readiness with the real llama-server under real Podman."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import api_key, chat, service
from tests.podman_env import podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def inspect(container: str) -> dict:
    return json.loads(podman("inspect", container).stdout)[0]


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_two_instances_get_disjoint_cpusets_and_planned_threads(prun, cli, write_config, smollm2, monkeypatch,
                                                               isolated):
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0-1")  # the plan as on a 2-core machine, whatever this one has
    a, b = prun.name("cpa"), prun.name("cpb")
    path = write_config(prun.header() + service(a) + service(b))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    started = cli("--config", path, "start", a, b)
    assert started.code == 0, started.text
    sets, threads = [], []
    for name in (a, b):
        info = inspect(f"{name}-0")
        sets.append(info["HostConfig"]["CpusetCpus"])
        argv = info["Config"]["Cmd"]
        threads.append((flag(argv, "--threads"), flag(argv, "--threads-batch")))
    assert sorted(sets) == ["0", "1"]  # disjoint, one core each
    assert threads == [("1", "1"), ("1", "1")]
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "status", "--json").out)}
    assert {rows[a]["cpuset"], rows[b]["cpuset"]} == {"0", "1"} and rows[a]["threads"] == 1
    assert rows[a]["cpuset_enforced"] is True and "2 llama.cpp processes" in rows[a]["cpu_plan"]
    for name in (a, b):
        assert chat(rows[name]["url"], api_key(isolated, name))[0] == 200


def test_user_threads_are_kept_and_that_service_is_not_pinned(prun, cli, write_config, smollm2, monkeypatch):
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0-1")
    a, b = prun.name("cpu"), prun.name("cpp")
    path = write_config(prun.header() + service(a, threads=2) + service(b))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    assert cli("--config", path, "start", a, b).code == 0
    user, planned = inspect(f"{a}-0"), inspect(f"{b}-0")
    assert flag(user["Config"]["Cmd"], "--threads") == "2" and "--threads-batch" not in user["Config"]["Cmd"]
    assert user["HostConfig"]["CpusetCpus"] == ""
    assert planned["HostConfig"]["CpusetCpus"] == "0-1" and flag(planned["Config"]["Cmd"], "--threads") == "2"


def test_web_ui_service_is_healthy_only_when_the_model_answers(prun, cli, write_config, smollm2, isolated):
    """Health path "/" is answered by the web UI before the model loads; start must wait for /health."""
    name = prun.name("ui")
    path = write_config(prun.header() + service(name, webui=True, health="/"))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    for attempt in range(3):  # each start from nothing: the model is loading when / first answers
        started = cli("--config", path, "start", name)
        assert started.code == 0, started.text
        [row] = json.loads(cli("--config", path, "status", name, "--json").out)
        code, answer = chat(row["url"], api_key(isolated, name))
        assert code == 200, f"attempt {attempt}: HTTP {code} right after start"
        assert answer["choices"][0]["message"]["content"] is not None
        assert cli("--config", path, "stop", name, "--remove").code == 0


def test_a_probe_change_alone_leaves_the_running_model_alone(prun, cli, write_config, smollm2, isolated):
    """`taskset -c 0 airpods start` after a plain start: the plan would differ (one CPU), the
    config did not: the same container keeps running, status says so, --recreate applies it."""
    import os
    import subprocess
    import sys

    name = prun.name("probe")
    path = write_config(prun.header() + service(name))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    assert cli("--config", path, "start", name).code == 0
    before = inspect(f"{name}-0")["Id"]
    env = {**os.environ, "AIRPODS_CPU_AFFINITY": ""}
    env.pop("AIRPODS_CPU_AFFINITY")
    again = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "airpods", "--config", path, "start", name],
                           capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr
    assert inspect(f"{name}-0")["Id"] == before and inspect(f"{name}-0")["State"]["Running"]
    if (os.cpu_count() or 1) > 1:  # on one CPU the plan cannot differ
        status = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "airpods", "--config", path, "status",
                                 "--json"], capture_output=True, text=True, env=env, check=False)
        [row] = json.loads(status.stdout)
        assert row["plan_differs"] and not row["outdated"], row

"""Health after start: the check each kind gets (rendered from the config), and the watcher that
runs checks without systemd timers, counts restarts and stops a service that keeps failing,
against the in-memory runtime with a test clock."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import replace

from airpods.health.supervisor import HealthPolicy, Ledger, forget, observe, status_fields
from airpods.health.watcher import watch
from airpods.orchestrate.events import Silent
from airpods.orchestrate.start import start
from airpods.plan.health import KEY_PATH
from airpods.plan.spec import HealthSpec, PortSpec, ServiceSpec
from airpods.runtime.fake import FakeRuntime
from tests.unit.builders import render

CHECK = "curl -fsS http://127.0.0.1:8080/health"


def _spec(name: str, **health) -> ServiceSpec:
    h = dict(check=CHECK, interval=2.0, retries=2, start_period=0.0, probe_timeout=1.0, max_restarts=2)
    h.update(health)
    return ServiceSpec(name=name, kind="generic", image="localhost/test/a:1", variant="cpu", pod=name,
                       container=f"{name}-0", network="airpods", aliases=(name,), ports=(PortSpec(18080, 8080),),
                       volumes=(), env={}, devices=(), security_opt=(), entrypoint=None, command=(),
                       health=HealthSpec(None, (200, 299), 5.0, **h), project="p1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _started(rt: FakeRuntime, *specs: ServiceSpec) -> None:
    start(rt, {s.name: s for s in specs}, [s.name for s in specs], Silent(), network="airpods",
          models_volume="m", wait=False)


def _observed(tmp_path, max_restarts: int) -> tuple[FakeRuntime, HealthPolicy, Ledger, float]:
    """A started container the watcher has seen once."""
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a", max_restarts=max_restarts))
    policy = HealthPolicy(2.0, 2, max_restarts, 0.0)
    ledger, now = Ledger(tmp_path / "p1.json"), 1_000_000.0
    observe(ledger, "a", rt.containers["a-0"], policy, now)
    return rt, policy, ledger, now


def _restarted(rt: FakeRuntime, started_at: float, *, count: int = 1, **fields) -> None:
    """What Podman shows after it started the container again."""
    state = rt.containers["a-0"]
    rt.containers["a-0"] = state.__class__(**{**state.__dict__, "restart_count": state.restart_count + count,
                                              "started_at": started_at, **fields})


def test_each_kind_gets_its_own_check_and_the_llama_probe_key_is_a_mounted_file(cli, write_config, isolated):
    data = render(cli)  # the default llama.cpp service: it has an API key
    h = data["health"]
    assert h["interval"] == 30 and h["retries"] == 3 and h["max_restarts"] == 4
    assert h["start_period"] == data["health"]["timeout"]  # a start may take what the start wait allows
    check = h["check"]
    assert "/health" in check and "/completion" in check and '"n_predict":1' in check
    assert f"< {KEY_PATH}" in check  # read by the shell itself (the argv test: test_review_security.py)
    key_file = isolated / "data" / "airpods" / "secrets" / "llamacpp-health-key"
    shown = json.dumps(render(cli, None, "llamacpp", "--show-secrets"))  # makes the secrets, as start does
    key = key_file.read_text().strip()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and len(key) >= 32
    assert key not in shown  # only its path is in the plan, even with the secrets shown
    assert {"source": str(key_file), "target": KEY_PATH, "mode": "ro"} in data["volumes"]
    cmd = data["command"]
    assert cmd[cmd.index("--api-key-file") + 1] == KEY_PATH
    shlex.split(check)  # one shell text, quoted as sh reads it
    webui = render(cli, None, "open-webui")["health"]["check"]
    assert "python3" in webui and "/health" in webui
    path = write_config("""
[services.llamacpp]
api_key = ""
health = { interval = 0 }
[services.open-webui]
health = { interval = 5, retries = 2, start_period = 7, max_restarts = 0 }
""")
    keyless = render(cli, path)
    assert keyless["health"]["check"] is None and "--api-key-file" not in keyless["command"]
    webui = render(cli, path, "open-webui")["health"]
    assert (webui["interval"], webui["retries"], webui["start_period"], webui["max_restarts"]) == (5, 2, 7, 0)


def test_a_refused_health_key_is_said_with_its_key_path(cli, write_config):
    path = write_config("[services.llamacpp]\nhealth = { retries = 0 }\n")
    result = cli("--config", path, "config", "validate")
    assert result.code == 2 and "services.llamacpp.health.retries" in result.err, result.text


def test_the_container_gets_the_check_and_its_policy_label():
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a"))
    state = rt.containers["a-0"]
    assert HealthPolicy.parse(state.labels["io.airpods.health"]) == HealthPolicy(2.0, 2, 2, 0.0)
    assert rt.specs["a-0"].health.check == CHECK


def test_watcher_runs_checks_counts_a_health_restart_with_its_reason(tmp_path):
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a"))
    clock, ledger = Clock(), tmp_path / "p1.json"
    said: list[str] = []
    ticks = iter(range(12))

    def sleep(_: float) -> None:
        clock.now += 1.0
        step = next(ticks, None)
        if step == 3:
            rt.unhealthy["a-0"] = "llama-server /health did not answer 200 within 1 s"  # a restart mends it
        if step is None:
            rt.stop_container("a-0", 1)

    watch(rt, "p1", ledger, run_checks=True, clock=clock, wait=sleep, say=said.append, idle_for=2,
          parallel=False)
    fields = status_fields(ledger, "a", rt.containers["a-0"].id)
    assert fields["restarts"] == 1, said
    assert "unhealthy: 2 failed health checks" in fields["last_failure"]["reason"]
    assert "did not answer 200" in fields["last_failure"]["reason"]
    assert any("a restarted" in line for line in said)
    assert rt.containers["a-0"].health_log[-1].exit_code == 0  # healthy again after the restart


def test_no_checks_are_run_where_systemd_timers_run_them(tmp_path):
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a"))
    clock = Clock()
    steps = iter(range(6))

    def sleep(_: float) -> None:
        clock.now += 1.0
        if next(steps, None) is None:
            rt.stop_container("a-0", 1)

    watch(rt, "p1", tmp_path / "p1.json", run_checks=False, clock=clock, wait=sleep, say=lambda _: None,
          idle_for=1)
    assert rt.containers["a-0"].health_log == ()


def test_after_max_restarts_in_a_row_it_is_stopped_and_start_gives_a_new_chance(tmp_path):
    rt, policy, ledger, now = _observed(tmp_path, 2)
    outcomes = []
    for i in range(3):  # killed three times: the restart policy brings it back each time
        _restarted(rt, (rt.containers["a-0"].started_at or 0) + 5, exit_code=137)
        outcomes.append(observe(ledger, "a", rt.containers["a-0"], policy, now + 5 * (i + 1)))
    assert [o.stop for o in outcomes] == [False, False, True]
    rec = ledger.records["a"]
    assert rec.gave_up and rec.restarts == 3 and "stopped by airpods after 3 restarts" in rec.last_failure["reason"]
    assert "code 137" in rec.last_failure["reason"]
    rt.start_container("a-0")  # as `airpods start` does: Podman counts again from 0
    forget(ledger, {"a": rt.containers["a-0"]})
    assert not ledger.records["a"].gave_up and ledger.records["a"].restarts == 0


def test_a_quiet_spell_ends_a_row_of_restarts(tmp_path):
    rt, policy, ledger, now = _observed(tmp_path, 1)
    for later in (10.0, 10.0 + policy.calm_after + 1):  # two restarts, far apart
        _restarted(rt, now + later)
        out = observe(ledger, "a", rt.containers["a-0"], policy, now + later)
        assert not out.stop
    assert ledger.records["a"].restarts == 2 and ledger.records["a"].in_a_row == 1


def test_other_projects_and_containers_without_a_check_are_not_watched(tmp_path):
    rt = FakeRuntime(images={"localhost/test/a:1"})
    other = _spec("b")
    _started(rt, _spec("a", check=""), ServiceSpec(**{**other.__dict__, "project": "p2"}))
    rt.unhealthy["b-0"] = "down"
    clock = Clock()

    def sleep(_: float) -> None:
        clock.now += 5.0

    watch(rt, "p1", tmp_path / "p1.json", run_checks=True, clock=clock, wait=sleep, say=lambda _: None,
          idle_for=3, parallel=False)
    assert rt.containers["b-0"].health_log == () and rt.containers["b-0"].running
    assert not (tmp_path / "p1.json").exists() or "b" not in json.loads((tmp_path / "p1.json").read_text())


def test_a_start_at_work_is_not_counted_nor_stopped_by_a_watcher_still_running(tmp_path):
    from airpods.health.supervisor import hold

    rt, policy, ledger, now = _observed(tmp_path, 0)
    ledger.records["a"].gave_up = True  # the watcher had stopped it
    hold(ledger, ["a"], now)
    _restarted(rt, (rt.containers["a-0"].started_at or 0) + 9, count=0)
    out = observe(ledger, "a", rt.containers["a-0"], policy, now + 1)  # `start` brought it back
    assert not out.stop and out.restarted == 0 and ledger.records["a"].restarts == 0
    forget(ledger, {"a": rt.containers["a-0"]})
    assert observe(ledger, "a", rt.containers["a-0"], policy, now + 2).restarted == 0


def test_a_recreated_container_is_checked_on_its_own_interval_not_the_old_ones(tmp_path):
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a", interval=30.0))
    clock, steps = Clock(), iter(range(14))

    def sleep(_: float) -> None:
        clock.now += 1.0
        step = next(steps, None)
        if step == 2:  # recreated by a start with interval = 2 (a new container, its label says so)
            rt.remove_container("a-0")
            _started(rt, _spec("a", interval=2.0))
        if step is None:
            rt.stop_container("a-0", 1)

    watch(rt, "p1", tmp_path / "p1.json", run_checks=True, clock=clock, wait=sleep, say=lambda _: None,
          idle_for=1, parallel=False)
    assert len(rt.containers["a-0"].health_log) >= 4  # ~12 s at 2 s; on the old 30 s schedule: none


def test_the_probe_key_is_made_even_after_specs_were_cached_without_it(cli, isolated):
    """Seen in CI: a command that makes no secrets (models list) cached the specs while the API key
    existed and the probe key did not; `start` then took them from the cache and Podman could not
    mount the missing file."""
    secrets = isolated / "data" / "airpods" / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    for name in ("llamacpp-api-key", "llamacpp-ui-api-key", "open-webui-secret-key"):
        (secrets / name).write_text("k" * 43 + "\n")
        (secrets / name).chmod(0o600)
    assert cli("config", "render", "llamacpp").code == 0  # makes no secret
    assert not (secrets / "llamacpp-health-key").exists()
    assert cli("config", "render", "llamacpp", "--show-secrets").code == 0  # makes them, as start does
    assert (secrets / "llamacpp-health-key").exists()


def test_doctor_says_who_runs_the_checks_and_whether_the_watcher_runs(cli, fake, isolated, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setattr("airpods.probes.systemd.timers_available", lambda environ, euid: True)
    assert json.loads(cli("doctor", "--json").out)["health"]["runs_checks"] == "Podman, from systemd timers"
    monkeypatch.setattr("airpods.probes.systemd.timers_available", lambda environ, euid: False)
    data = json.loads(cli("doctor", "--json").out)
    assert data["health"]["systemd_timers"] is False
    assert data["health"]["runs_checks"].startswith("airpods' watcher") and data["health"]["watcher_pid"] is None
    pid_file = isolated / "data" / "airpods" / "health" / "default.pid"
    pid_file.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "watch"])
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        assert json.loads(cli("doctor", "--json").out)["health"]["watcher_pid"] == sleeper.pid
        assert f"watcher running, pid {sleeper.pid}" in cli("doctor").out
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_start_of_services_without_checks_works(cli, fake, write_config):
    off = "".join(f"[services.{name}]\nenabled = false\nhealth = {{ interval = 0 }}\n"  # no check anywhere
                  for name in ("llamacpp", "llamacpp-ui", "ollama", "open-webui", "gateway", "prometheus"))
    path = write_config(off + """
[services.web]
image = "localhost/test/web:1"
ports = [{ host = 18765, container = 80 }]
health = { path = "/", interval = 0 }
""")
    fake.images.add("localhost/test/web:1")
    result = cli("--config", path, "start", "web", "--no-wait")
    assert result.code == 0, result.text
    [spec] = [s for s in fake.specs.values() if s.name == "web"]
    assert fake.containers[spec.container].running and spec.health.check == ""


def test_the_watcher_sleeps_until_the_next_check_is_due_not_a_tick(tmp_path):
    """Issue 42: one healthy service, interval 30 s, no pins: between two looks it asks to sleep
    until its check is due (the polling watcher looked every 0.5 s)."""
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a", interval=30.0))
    clock, asked, looks = Clock(), [], []
    real_list = rt.list_managed

    def counted() -> list:
        looks.append(clock.now)
        return real_list()

    rt.list_managed = counted  # type: ignore[method-assign]

    def wait(seconds: float) -> list:
        asked.append(seconds)
        clock.now += seconds
        if len(asked) == 4:
            rt.stop_container("a-0", 1)
        return []

    watch(rt, "p1", tmp_path / "p1.json", run_checks=True, clock=clock, wait=wait, say=lambda _: None,
          idle_for=30, parallel=False)
    assert asked[:3] == [30.0, 30.0, 30.0], asked
    assert len(rt.containers["a-0"].health_log) == 3  # one check each time one was due
    assert len(looks) == 6  # the first, 3 checks, the one that finds it stopped, the end 30 s later: no polling


def test_a_crash_loop_after_a_start_that_did_not_wait_is_counted_from_that_start(tmp_path):
    """Issue 40, item 1: `forget` after a --no-wait start counts from Podman's 0 even when the
    container was between two restarts as the start looked; the watcher then stops it."""
    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a", max_restarts=2))
    ledger_path = tmp_path / "p1.json"
    state = rt.containers["a-0"]
    rt.containers["a-0"] = replace(state, status="exited", exit_code=3, restart_count=2)  # as the start looked
    with Ledger.locked(ledger_path) as ledger:
        forget(ledger, {"a": rt.containers["a-0"]}, {"a"})
    rt.containers["a-0"] = replace(rt.containers["a-0"], status="running", restart_count=3,
                                   started_at=(state.started_at or 0) + 1)
    clock, said = Clock(), []
    watch(rt, "p1", ledger_path, run_checks=False, clock=clock, wait=lambda s: setattr(clock, "now", clock.now + s),
          say=said.append, idle_for=5, parallel=False)
    fields = status_fields(ledger_path, "a", rt.containers["a-0"].id)
    assert fields["restarts"] == 3 and fields["gave_up"], (fields, said)
    assert "code 3" in fields["last_failure"]["reason"]
    assert not rt.containers["a-0"].running


def test_a_hold_of_a_start_that_was_killed_holds_nothing(tmp_path):
    """Issue 40, item 6: a killed start's 900 s hold ends with its process."""
    import subprocess
    import sys

    from airpods.health.supervisor import hold, holder_alive, release_dead_holds

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ledger = Ledger(tmp_path / "p1.json")
    hold(ledger, ["a", "never-created"], 1000.0, holder=gone.pid)
    hold(ledger, ["b"], 1000.0, holder=os.getpid())
    assert not holder_alive(gone.pid) and holder_alive(os.getpid())
    release_dead_holds(ledger)
    assert ledger.records["a"].hold_until == 0.0 and ledger.records["never-created"].hold_until == 0.0
    assert ledger.records["b"].hold_until == 1900.0


def test_halt_stops_again_what_the_restart_policy_brought_back():
    """Podman 4.3: a stop between an exit and its restart does not stick; halt stops until quiet."""
    from airpods.health.watcher import halt

    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a"))
    comebacks = iter([True, True, False])
    real_stop = rt.stop_container

    def stop(name: str, timeout: int) -> None:
        real_stop(name, timeout)
        if next(comebacks):  # the restart policy started it again just after
            rt.containers[name] = replace(rt.containers[name], status="running", restart_count=1)

    rt.stop_container = stop  # type: ignore[method-assign]
    halt(rt, rt.containers["a-0"], sleep=lambda _: None)
    assert not rt.containers["a-0"].running


def test_the_event_feed_wakes_at_an_event_and_comes_back_after_a_lost_stream():
    import time

    from airpods.health.feed import LOST, EventFeed
    from airpods.runtime.port import ContainerEvent

    rt = FakeRuntime()
    rt.event_log = [ContainerEvent("a-0", "died", time.time() + 1, "p1"),
                    ContainerEvent("x-0", "died", time.time() + 1, "other")]
    said: list[str] = []
    feed = EventFeed(rt, "p1", say=said.append, pause=0.01).start()
    got = feed.wait(5)
    while LOST not in got:
        got += feed.wait(5)
    assert got[0].name == "a-0" and all(e.name != "x-0" for e in got)
    assert any("event stream" in line for line in said)
    assert feed.wait(5)  # it tries again: the stream (ended) is read once more, then lost again
    assert feed.reconnects >= 1


def test_the_watchers_chore_runs_at_its_interval_while_the_project_runs(tmp_path):
    """The hub's routes are refreshed every HUB_REFRESH_EVERY seconds by the watcher (its chore):
    it wakes for it, runs it while something runs, says its failure and goes on, and sleeps no
    shorter than it needs to (a check every 30 s and a chore every 60 s: waits of 30 s)."""
    import threading

    rt = FakeRuntime(images={"localhost/test/a:1"})
    _started(rt, _spec("a", interval=30.0))
    clock, asked, ran, said = Clock(), [], [], []
    done, start_at = threading.Event(), clock.now

    def chore() -> None:
        ran.append(clock.now)
        done.set()
        if len(ran) == 2:
            raise RuntimeError("host b did not answer")

    def wait(seconds: float) -> list:
        due = clock.now > start_at and (clock.now - start_at) % 60 == 0 and rt.containers["a-0"].running
        if due:  # a chore was due: its thread has run before the clock moves on
            assert done.wait(5.0)
        done.clear()
        asked.append(seconds)
        clock.now += seconds
        if len(asked) == 8:
            rt.stop_container("a-0", 1)
        return []

    watch(rt, "p1", tmp_path / "p1.json", run_checks=True, clock=clock, wait=wait, say=said.append,
          idle_for=30, parallel=False, chore=(60.0, "a refresh of the hub's routes", chore))
    assert [t - start_at for t in ran] == [60.0, 120.0, 180.0], ran  # stopped at 240 s: no more
    assert all(s == 30.0 for s in asked[:8]), asked
    assert "a refresh of the hub's routes: host b did not answer" in said


def test_a_failed_checks_reason_is_its_own_words_not_curls_beside_them():
    from airpods.health.supervisor import check_words

    ours = "llama-server /health did not answer 200 within 2 s (model not loaded, or the server is stuck)"
    curl = "curl: (28) Operation timed out after 2001 milliseconds with 0 bytes received"
    assert check_words(f"{curl}\n{ours}\n", 1) == ours
    assert check_words(f"{ours}\n{curl}\n", 1) == ours  # stderr read after stdout (seen once in CI)
    assert check_words(f"{curl}\n", 1) == curl  # nothing else said: what there is
    assert check_words("", 7) == "exit code 7"

"""What is airpods' own (runtime/owned.py): labels an image can carry prove nothing. Podman copies
an image's labels onto every container made from it (the fake does as Podman does), so a container
run by hand from an image that carries airpods' labels must be ignored by status, stop, clean, top
and the health watcher, and nothing it names (a URL, a key file, a pod) may be used."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from airpods.health.watcher import watch
from airpods.orchestrate.events import Silent
from airpods.orchestrate.running import Running, in_project
from airpods.orchestrate.start import start
from airpods.plan.router import RouterModelSpec, RouterSpec
from airpods.plan.spec import LABEL_MANAGED, LABEL_POD, LABEL_SEAL, HealthSpec, PortSpec, ServiceSpec
from airpods.runtime.fake import FakePod, FakeRuntime
from airpods.runtime.owned import OwnedRuntime, Seal
from airpods.runtime.port import ContainerState
from tests.helpers import before_the_seal, http_server, listener
from tests.podman_env import free_port

HOSTILE = "localhost/evil/claims-airpods:1"

WEB = """
[runtime]
project = "{project}"
[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
[services.web]
image = "localhost/test/web:1"
pod = "web"
container = "web-0"
ports = [{{ host = {port}, container = 8080 }}]
"""

_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # every file this process opens (an audit hook cannot be removed: it only records)


def hostile_labels(project: str, *, url_port: int, key_file: Path, pod: str = "victim") -> dict[str, str]:
    """What an image may carry to pass for an airpods router of `project`: a URL, pins, a probe key
    file, a pod to act on, a health policy, a stop timeout that does not parse."""
    return {"io.airpods.managed": "true", "io.airpods.project": project, "io.airpods.service": "web",
            "io.airpods.kind": "llamacpp", "io.airpods.pod": pod, "io.airpods.pins": "m1",
            "io.airpods.url": f"http://127.0.0.1:{url_port}/v1", "io.airpods.health-key": str(key_file),
            "io.airpods.ports": f"127.0.0.1:{url_port}:8080", "io.airpods.health": "1/3/4/0",
            "io.airpods.stop-timeout": "ten", "io.airpods.spec-hash": "0" * 16}


@pytest.fixture
def rt(monkeypatch, tmp_path):
    fake = FakeRuntime(images={"localhost/test/web:1"}, volume_root=tmp_path / "volumes")
    monkeypatch.setattr("airpods.runtime.connect.connect", lambda **_: fake)
    return fake


def test_the_seal_covers_the_name_and_every_airpods_label_and_drops_what_an_image_added():
    seal = Seal(b"k" * 32)
    labels = seal.stamp("container", "web-0", {LABEL_MANAGED: "true", "io.airpods.project": "p", "team": "ml"})
    assert seal.check("container", "web-0", labels) == {LABEL_MANAGED: "true", "io.airpods.project": "p",
                                                        "team": "ml"}
    assert seal.check("container", "web-1", labels) is None  # another name
    assert seal.check("pod", "web-0", labels) is None  # another kind of object
    assert seal.check("container", "web-0", {**labels, "io.airpods.project": "q"}) is None  # a changed label
    assert Seal(b"x" * 32).check("container", "web-0", labels) is None  # another user's key
    # An image's own io.airpods.* label beside the ones airpods set: dropped, the rest kept.
    assert "io.airpods.pins" not in seal.check("container", "web-0", {**labels, "io.airpods.pins": "m"})
    assert seal.check("container", "web-0", {k: v for k, v in labels.items() if k != LABEL_SEAL}) is None


def test_a_container_from_an_image_with_airpods_labels_is_not_airpods(rt, cli, write_config, tmp_path, isolated):
    port = free_port()
    secret = tmp_path / "not-airpods" / "hf-token"
    secret.parent.mkdir()
    secret.write_text("hf_not_for_anyone\n")
    _opened.clear()
    path = write_config(WEB.format(project="p1", port=port))
    assert cli("--config", path, "start", "web", "--no-wait").code == 0  # airpods' own, sealed
    rt.pods["victim"] = FakePod("victim", None, running=True, labels={"team": "theirs"})
    rt.containers["victim-app"] = ContainerState("victim-app", "running", pod="victim", id="f" * 64)
    with listener() as stranger:
        rt.image_label_map[HOSTILE] = hostile_labels("p1", url_port=stranger.port, key_file=secret)
        rt.run_by_hand("evil", HOSTILE, ports=(("127.0.0.1", stranger.port, 8080),))
        rt.run_by_hand("evil-2", HOSTILE, {"io.airpods.service": "evil-2"})
        rows = json.loads(cli("--config", path, "status", "--json").out)
        assert [(r["service"], r["container"], r["state"]) for r in rows] == [("web", "web-0", "running")]
        top = cli("--config", path, "top", "--json", "--interval", "0.2")
        assert "evil" not in top.out
        assert cli("--config", path, "stop").code == 0
        assert rt.containers["evil"].running and rt.containers["evil-2"].running  # not airpods': not stopped
        assert not rt.containers["web-0"].running
        assert cli("--config", path, "clean").code == 0
        assert {"evil", "evil-2", "victim-app"} <= set(rt.containers) and "victim" in rt.pods
        assert "web-0" not in rt.containers
    assert stranger.connections == 0
    assert not any(str(secret) in p for p in _opened)


def test_the_watcher_keeps_only_airpods_own_routers_pins_and_reads_no_file_a_label_names(tmp_path, monkeypatch):
    monkeypatch.setattr("airpods.orchestrate.preflight.port_free", lambda ip, port: True)  # ours stands in for it
    monkeypatch.setattr("airpods.orchestrate.start.check_models", lambda *a: [])  # no model file: not the point
    secret = tmp_path / "not-airpods" / "ssh-key"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n")
    _opened.clear()
    fake = FakeRuntime(images={"localhost/test/router:1"})
    owned = OwnedRuntime(fake, {"XDG_DATA_HOME": str(tmp_path / "data")})
    with http_server(lambda *a: (200, "application/json", b"{}")) as ours, listener() as stranger:
        router = ServiceSpec(
            name="router", kind="llamacpp", image="localhost/test/router:1", variant="cpu", pod="router",
            container="router-0", network="airpods", aliases=("router",), ports=(PortSpec(ours.port, 8080),),
            volumes=(), env={}, devices=(), security_opt=(), entrypoint=None, command=(), project="p1",
            health=HealthSpec(None, (200, 299), 5.0, check="true", interval=1.0, retries=3, max_restarts=4),
            router=RouterSpec(models=(RouterModelSpec("m1", "m1.gguf", pin=True),),
                              preset_host_path=str(tmp_path / "router.ini")))
        start(owned, {"router": router}, ["router"], Silent(), network="airpods", models_volume="m", wait=False)
        fake.image_label_map[HOSTILE] = hostile_labels("p1", url_port=stranger.port, key_file=secret)
        fake.run_by_hand("evil", HOSTILE, ports=(("127.0.0.1", stranger.port, 8080),))
        said: list[str] = []
        ticks = iter(range(3))

        def sleep(_seconds: float) -> None:
            import time

            time.sleep(0.2)  # the touches run in threads
            if next(ticks, None) is None:
                raise StopIteration

        with pytest.raises(StopIteration):
            watch(owned, "p1", tmp_path / "p1.json", run_checks=False, wait=sleep, say=said.append,
                  key_of=lambda service: f"probe-key-of-{service}")
    assert ours.requests and all(p == "/tokenize" for _, p, _, _ in ours.requests)
    assert ours.requests[0][2]["Authorization"] == "Bearer probe-key-of-router"  # the key from airpods' folder
    assert stranger.connections == 0 and not stranger.raw
    assert not any(str(secret) in p for p in _opened)
    assert fake.containers["evil"].running  # its stop timeout "ten" was never read: it is not watched
    assert not any("BEGIN OPENSSH" in line for line in said)


def test_a_start_refuses_a_name_taken_by_a_container_that_only_claims_to_be_airpods(rt, cli, write_config):
    path = write_config(WEB.format(project="p1", port=free_port()))
    rt.image_label_map[HOSTILE] = {"io.airpods.managed": "true", "io.airpods.project": "p1",
                                   "io.airpods.service": "web"}
    rt.run_by_hand("web-0", HOSTILE)
    result = cli("--config", path, "start", "web", "--no-wait")
    assert result.code == 2, result.text
    assert "without your airpods' seal" in result.err and "nothing was created" in result.err
    assert rt.containers["web-0"].image == HOSTILE and "web" not in rt.pods


def test_a_pod_is_the_one_podman_says_not_the_one_a_label_names():
    state = ContainerState("web-0", "running", labels={LABEL_MANAGED: "true", LABEL_POD: "victim"}, pod=None)
    assert Running.from_state(state).pod is None
    assert Running.from_state(replace(state, pod="web")).pod == "web"


def test_destructive_verbs_refuse_what_airpods_did_not_make(tmp_path):
    from airpods.errors import RuntimeFailure

    fake = FakeRuntime()
    owned = OwnedRuntime(fake, {"XDG_DATA_HOME": str(tmp_path / "data")})
    fake.pods["victim"] = FakePod("victim", None, running=True, labels={LABEL_MANAGED: "true"})
    fake.image_label_map[HOSTILE] = {LABEL_MANAGED: "true"}
    fake.run_by_hand("evil", HOSTILE)
    fake.volumes["data"], fake.vol_labels["data"] = {}, {LABEL_MANAGED: "true"}
    for verb in (lambda: owned.remove_pod("victim"), lambda: owned.stop_pod("victim", 1),
                 lambda: owned.remove_container("evil"), lambda: owned.stop_container("evil", 1),
                 lambda: owned.remove_volume("data")):
        with pytest.raises(RuntimeFailure, match="did not create it"):
            verb()
    assert "victim" in fake.pods and fake.containers["evil"].running and "data" in fake.volumes
    owned.remove_pod("no-such-pod")  # nothing there: nothing to refuse


def test_objects_of_an_airpods_from_before_the_seal_are_taken_over_once(rt, cli, write_config, isolated):
    path = write_config(WEB.format(project="p1", port=free_port()))
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    rt.image_label_map[HOSTILE] = {LABEL_MANAGED: "true", "io.airpods.project": "p1", "io.airpods.service": "x"}
    rt.run_by_hand("evil", HOSTILE)  # there at the upgrade too, but its image carries airpods' labels
    rt.image_label_map["localhost/test/web:1"] = {"io.airpods.test-image": "2"}  # a build stamp: no claim
    before_the_seal(rt, isolated / "data")
    rows = json.loads(cli("--config", path, "status", "--json").out)
    assert [(r["service"], r["state"]) for r in rows] == [("web", "running")]  # taken over: no recreate needed
    record = json.loads((isolated / "data" / "airpods" / "ownership.json").read_text())
    assert record["containers"] == [rt.containers["web-0"].id] and record["pods"] == ["web"]
    assert oct((isolated / "data" / "airpods" / "ownership.json").stat().st_mode & 0o777) == "0o600"
    # Unsealed containers that appear once the key exists are never taken over.
    rt.image_label_map["localhost/test/web:1"] = {}
    rt.run_by_hand("late", "localhost/test/web:1", {LABEL_MANAGED: "true", "io.airpods.project": "p1",
                                                    "io.airpods.service": "late"})
    assert [r.service for r in in_project(OwnedRuntime(rt, {"XDG_DATA_HOME": str(isolated / "data")})
                                          .list_managed(), "p1")] == ["web"]
    start = cli("--config", path, "start", "web", "--no-wait")  # the taken-over container is its own
    assert start.code == 0 and "already running" in start.err


def test_the_watchers_log_and_ledger_are_private(rt, cli, write_config, isolated, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: None)  # spawn, but run nothing
    from airpods.stack import Stack
    from airpods.stack.watcher import spawn

    health = isolated / "data" / "airpods" / "health"
    health.mkdir(parents=True, mode=0o755)
    (health / "p1.log").write_text("an older log\n")
    (health / "p1.log").chmod(0o644)
    spawn(Stack(), "p1")
    assert oct(health.stat().st_mode & 0o777) == "0o700"
    assert oct((health / "p1.log").stat().st_mode & 0o777) == "0o600"


def test_keys_ca_trusts_no_volume_airpods_did_not_make(rt, cli, write_config):
    rt.volumes["airpods_gateway_data"] = {}
    rt.vol_labels["airpods_gateway_data"] = {LABEL_MANAGED: "true", "io.airpods.project": "default"}  # unsealed
    result = cli("--config", write_config("[services.gateway]\nenabled = true\n"), "keys", "ca")
    assert result.code == 2 and "not created by your airpods" in result.err and "BEGIN" not in result.out


def test_a_seal_survives_podman_s_cli_which_splits_a_label_on_commas():
    seal = Seal(b"k" * 32)
    ours = {LABEL_MANAGED: "true", "io.airpods.project": "p", "io.airpods.test": "1"}
    labels = seal.stamp("volume", "v", ours)
    assert "," not in labels[LABEL_SEAL] and seal.check("volume", "v", labels) == ours

"""One scope per config (the project label) and "what runs is the truth", through the CLI against
the in-memory runtime: a second config with the same service names cannot touch the first one's
objects; renamed services are found as orphans; stop and clean work with a broken config; a
probe change alone does not recreate a running container."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from airpods.plan.spec import LABEL_MANAGED, LABEL_PROJECT
from airpods.runtime.fake import FakeRuntime
from tests.helpers import before_the_seal
from tests.podman_env import free_port

WEB = """
[runtime]
{project}
[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
[services.web]
image = "localhost/test/web:1"
pod = "{pod}"
container = "web-0"
ports = [{{ host = {port}, container = 8080 }}]
volumes = [{{ source = "web_data", target = "/data" }}]
"""


@pytest.fixture
def rt(monkeypatch, tmp_path):
    fake = FakeRuntime(images={"localhost/test/web:1"}, volume_root=tmp_path / "volumes")
    monkeypatch.setattr("airpods.runtime.connect.connect", lambda **_: fake)
    return fake


def web(write_config, *, project: str | None = None, pod: str = "web", port: int | None = None) -> str:
    return write_config(WEB.format(project=f'project = "{project}"' if project else "", pod=pod,
                                   port=port or free_port()))


def test_the_project_is_stamped_on_everything_and_shown_by_status(rt, cli, write_config):
    path = web(write_config, project="lab")
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    assert rt.containers["web-0"].labels[LABEL_PROJECT] == "lab"
    assert rt.pods["web"].labels[LABEL_PROJECT] == "lab"
    assert rt.vol_labels["web_data"][LABEL_PROJECT] == "lab"
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["project"] == "lab" and row["state"] == "running"


def test_a_config_file_of_its_own_is_a_project_of_its_own(rt, cli, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(WEB.format(project="", pod="web", port=free_port()))
    assert cli("--config", str(other), "start", "web", "--no-wait").code == 0
    assert rt.containers["web-0"].labels[LABEL_PROJECT] == "other"


def test_a_second_config_with_the_same_names_cannot_touch_the_first(rt, cli, write_config):
    first = web(write_config, project="first")
    assert cli("--config", first, "start", "web", "--no-wait").code == 0
    before = (rt.containers["web-0"], dict(rt.pods["web"].labels), dict(rt.volumes))
    second = web(write_config, project="second")

    refused = cli("--config", second, "start", "web", "--no-wait")
    assert refused.code == 2, refused.text
    assert "pod web (belongs to the airpods project 'first')" in refused.err
    for command in (["stop"], ["stop", "web"], ["stop", "--remove"], ["clean"], ["clean", "--volumes", "--yes"],
                    ["clean", "web", "--volumes", "--yes"]):
        result = cli("--config", second, *command)
        assert result.code in (0, 2), result.text
    status = json.loads(cli("--config", second, "status", "--json").out)
    assert [r["state"] for r in status] == ["absent"]
    assert (rt.containers["web-0"], dict(rt.pods["web"].labels), dict(rt.volumes)) == before
    assert rt.containers["web-0"].running


def test_objects_from_before_projects_belong_to_the_default_project(rt, cli, tmp_path, write_config):
    default = tmp_path / "config" / "airpods" / "config.toml"  # the user's own file (XDG_CONFIG_HOME)
    default.parent.mkdir(parents=True)
    default.write_text(WEB.format(project="", pod="web", port=free_port()))
    assert cli("start", "web", "--no-wait").code == 0
    state = rt.containers["web-0"]
    rt.containers["web-0"] = replace(state, labels={k: v for k, v in state.labels.items() if k != LABEL_PROJECT})
    before_the_seal(rt, tmp_path / "data")  # made before projects, so before the seal too: taken over once
    [row] = json.loads(cli("status", "--json").out)
    assert row["state"] == "running" and row["project"] == "default"
    # Another config's clean does not see it; the user's own stop does.
    assert cli("--config", web(write_config, project="tests"), "clean").code == 0
    assert rt.containers["web-0"].running
    assert "web: stopped" in cli("stop").err
    assert not rt.containers["web-0"].running


def test_a_pod_airpods_did_not_create_is_never_removed(rt, cli, write_config):
    from airpods.runtime.fake import FakePod

    rt.networks.add("airpods")
    rt.pods["web"] = FakePod("web", None, True, labels={})
    result = cli("--config", web(write_config), "start", "web", "--no-wait")
    assert result.code == 2 and "not created by airpods" in result.err
    assert rt.pods["web"].running and "web-0" not in rt.containers


def test_renamed_pod_is_an_orphan_that_status_lists_and_stop_and_clean_reach(rt, cli, write_config):
    port = free_port()
    old = web(write_config, project="p", pod="llm", port=port)
    assert cli("--config", old, "start", "web", "--no-wait").code == 0
    renamed = web(write_config, project="p", pod="chat", port=port)
    rows = {r["pod"]: r for r in json.loads(cli("--config", renamed, "status", "--json").out)}
    assert rows["llm"]["orphaned"] and "now uses pod chat" in rows["llm"]["orphaned"]
    assert rows["llm"]["state"] == "running" and rows["chat"]["state"] == "absent"
    table = cli("--config", renamed, "status").text
    assert "[orphaned:" in table and "airpods clean removes it" in table
    stopped = cli("--config", renamed, "stop", "web")
    assert stopped.code == 0 and "orphaned" in stopped.err
    assert not any(c.running for c in rt.containers.values())
    assert cli("--config", renamed, "clean").code == 0
    assert rt.pods == {} and rt.containers == {}
    # Starting the renamed config replaces this project's container of the same name.
    assert cli("--config", old, "start", "web", "--no-wait").code == 0
    assert cli("--config", renamed, "start", "web", "--no-wait").code == 0
    assert set(rt.pods) == {"chat"} and rt.containers["web-0"].pod == "chat"


def test_stop_and_clean_work_with_a_config_that_does_not_validate(rt, cli, write_config, tmp_path):
    path = web(write_config, project="p")
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    Path(path).write_text(Path(path).read_text() + '\n[services.web.health]\ntimeout = "soon"\n')
    assert cli("--config", path, "status").code == 2  # status still reports the broken config
    result = cli("--config", path, "stop")
    assert result.code == 0, result.text
    assert "does not validate" in result.err or "invalid" in result.err
    assert not rt.containers["web-0"].running
    assert cli("--config", path, "clean").code == 0 and rt.containers == {}


def test_status_shows_what_runs_under_the_config_error_while_the_file_is_not_toml(rt, cli, write_config):
    """Issue 40, item 5: status said only the error (exit 2), while stop and logs found the same
    containers by their labels."""
    path = web(write_config)
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    Path(path).write_text(Path(path).read_text() + "\n[services.web\nbroken = \n")
    result = cli("--config", path, "status")
    assert result.code == 2, result.text
    lines = result.err.splitlines()
    assert "found by its labels" in lines[0] and "config" in lines[0].lower()  # the error first
    assert "web" in result.out and "running" in result.out
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["service"] == "web" and row["state"] == "running" and row["container"] == "web-0"
    assert "Traceback" not in result.text


def test_a_probe_change_alone_does_not_recreate_a_running_container(rt, cli, write_config, monkeypatch):
    text = WEB.format(project='project = "p"', pod="web", port=free_port()).replace(
        '[services.llamacpp]\nenabled = false', '[services.llamacpp]\nenabled = true')
    path = write_config(text)
    rt.images.add("ghcr.io/ggml-org/llama.cpp:server")
    rt.ensure_volume("airpods_llamacpp_models")
    (Path(rt.volume_path("airpods_llamacpp_models")) / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0-3")
    assert cli("--config", path, "start", "llamacpp", "--no-wait").code == 0, "first start"
    first = rt.containers["p-llamacpp-0"]
    assert "--threads" in rt.specs["p-llamacpp-0"].command
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0")  # like `taskset -c 0 airpods start`
    again = cli("--config", path, "start", "llamacpp", "--no-wait")
    assert again.code == 0, again.text
    assert rt.containers["p-llamacpp-0"] is first
    [row] = [r for r in json.loads(cli("--config", path, "status", "--json").out) if r["service"] == "llamacpp"]
    assert row["plan_differs"] and not row["outdated"]
    assert "--recreate applies it" in cli("--config", path, "status").text
    assert cli("--config", path, "start", "llamacpp", "--no-wait", "--recreate").code == 0
    assert rt.containers["p-llamacpp-0"] is not first
    # A changed config still recreates without --recreate.
    path2 = write_config(text.replace('[services.llamacpp]\nenabled = true',
                                      '[services.llamacpp]\nenabled = true\ncommand_args = { ctx_size = 1024 }'))
    latest = rt.containers["p-llamacpp-0"]
    assert cli("--config", path2, "start", "llamacpp", "--no-wait").code == 0
    assert rt.containers["p-llamacpp-0"] is not latest


def test_unlabelled_managed_container_of_another_project_is_not_counted(rt):
    from airpods.orchestrate.running import in_project

    rt.containers["x-0"] = __import__("airpods.runtime.port", fromlist=["ContainerState"]).ContainerState(
        "x-0", "running", labels={LABEL_MANAGED: "true"})
    assert [r.container for r in in_project(rt.list_managed(), "default")] == ["x-0"]
    assert in_project(rt.list_managed(), "tests") == []


def test_status_on_a_terminal_shows_every_annotation_the_piped_output_shows(monkeypatch):
    import io

    from airpods.cli.terminal import Terminal

    class Tty(io.StringIO):
        def isatty(self):
            return True

    rows = [["web", "running", "healthy", "-", "[config changed: airpods start recreates it]"]]
    piped, tty = io.StringIO(), Tty()
    Terminal(stdout=piped).table(["A", "B", "C", "D", "E"], rows)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    Terminal(stdout=tty).table(["A", "B", "C", "D", "E"], rows)
    assert "[config changed: airpods start recreates it]" in piped.getvalue()
    assert "[config changed: airpods start recreates it]" in tty.getvalue()


SAME_NAMES = """
[runtime]
{runtime}
[services.open-webui]
enabled = false
[services.llamacpp]
enabled = false
[services.web]
image = "localhost/test/web:1"
ports = [{{ host = {port}, container = 8080 }}]
"""


def test_a_second_project_with_the_same_service_names_runs_beside_the_first(fake, cli, write_config, isolated):
    from tests.podman_env import free_port

    fake.images.add("localhost/test/web:1")
    mine = isolated / "config" / "airpods" / "config.toml"  # the user's own file: the default project
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(SAME_NAMES.format(runtime="", port=free_port()))
    assert cli("start", "web", "--no-wait").code == 0
    before = fake.containers["web-0"]
    lab = write_config(SAME_NAMES.format(runtime='project = "lab"', port=free_port()))
    started = cli("--config", lab, "start", "web", "--no-wait")
    assert started.code == 0, started.text
    assert set(fake.pods) == {"web", "lab-web"} and {"web-0", "lab-web-0"} <= set(fake.containers)
    assert fake.containers["web-0"] is before  # the user's own stack: not touched, plain names kept
    assert fake.specs["lab-web-0"].network == "airpods-lab" and fake.specs["web-0"].network == "airpods"
    [row] = json.loads(cli("--config", lab, "status", "--json").out)
    assert row["pod"] == "lab-web" and row["container"] == "lab-web-0" and row["state"] == "running"
    assert "lab-web / lab-web-0" in cli("--config", lab, "status").text
    assert cli("--config", lab, "stop", "--remove").code == 0
    assert set(fake.pods) == {"web"} and fake.containers["web-0"].running


def test_a_projects_container_under_its_former_name_is_replaced_by_the_prefixed_one(fake, cli, write_config):
    from tests.podman_env import free_port

    fake.images.add("localhost/test/web:1")
    port = free_port()
    old = write_config(SAME_NAMES.format(runtime='project = "lab"\nname_prefix = ""', port=port))
    assert cli("--config", old, "start", "web", "--no-wait").code == 0
    assert "web-0" in fake.containers
    new = write_config(SAME_NAMES.format(runtime='project = "lab"', port=port))
    result = cli("--config", new, "start", "web", "--no-wait")
    assert result.code == 0, result.text
    assert set(fake.pods) == {"lab-web"} and set(fake.containers) == {"lab-web-0"}  # the same port, taken over

"""What a start that fails says and remembers, through the CLI or the orchestrator against the
in-memory runtime (which restarts containers like a restart policy does): over the memory budget,
a crash while a sibling still waits, a kill from `airpods stop` against one from the kernel, an
out-of-memory kill kept for `status`, the OCI runtime's own message, a port someone else holds."""

from __future__ import annotations

import json
import time

import pytest

from airpods.errors import ServiceExited
from airpods.orchestrate.events import Silent
from airpods.orchestrate.start import start
from airpods.plan.spec import HealthSpec, PortSpec
from tests.podman_env import free_port
from tests.unit.builders import LLAMA, MODELS, model_in_volume, spec


def test_start_refuses_over_budget_through_the_cli_and_creates_nothing(fake, cli, write_config):
    model_in_volume(fake, "m.gguf", layers=30)
    fake.images.add(LLAMA)
    path = write_config('[services.llamacpp]\ndefault_model = "m.gguf"\nresources = { memory = "64m" }\n'
                        '[services.open-webui]\nenabled = false\n')
    result = cli("--config", path, "start", "llamacpp")
    assert result.code == 2 and "nothing was created" in result.err, result.text
    assert fake.pods == {} and fake.containers == {}


def test_a_crash_is_reported_at_once_while_a_sibling_still_waits(fake):
    fake.images.update({"localhost/test/a:1", "localhost/test/b:1"})
    crash = spec("a")
    slow = spec("b", ports=(PortSpec(free_port(), 8080),), health=HealthSpec("/health", (200, 299), 300.0))
    fake.exit_on_start["a-0"] = 2
    began = time.monotonic()
    with pytest.raises(ServiceExited) as err:
        start(fake, {"a": crash, "b": slow}, ["a", "b"], Silent(), network="airpods", models_volume=MODELS)
    assert "service 'a' exited during startup (exit code 2)" in err.value.message
    assert time.monotonic() - began < 10


def test_sigkill_from_airpods_stop_is_a_stop_and_from_the_kernel_a_crash(fake, cli, write_config):
    from dataclasses import replace

    fake.images.add("localhost/test/web:1")
    path = write_config(f'[services.web]\nimage = "localhost/test/web:1"\ncontainer = "web-0"\n'
                        f'ports = [{{ host = {free_port()}, container = 80 }}]\n'
                        '[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n')
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    killed = fake.containers["web-0"]
    fake.containers["web-0"] = replace(killed, status="exited", exit_code=137)  # the kernel's SIGKILL
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["state"] == "exited" and row["exit_code"] == 137
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    assert cli("--config", path, "stop", "--timeout", "0").code == 0
    fake.containers["web-0"] = replace(fake.containers["web-0"], status="exited", exit_code=137)
    [row] = json.loads(cli("--config", path, "status", "--json").out)
    assert row["state"] == "stopped"


def test_a_stop_during_startup_is_not_called_out_of_memory(fake, tmp_path):
    fake.images.add("localhost/test/a:1")
    a = spec("a", health=HealthSpec("/health", (200, 299), 30.0))
    fake.exit_on_start["a-0"] = 137
    with pytest.raises(ServiceExited) as err:
        start(fake, {"a": a}, ["a"], Silent(), network="airpods", models_volume=MODELS,
              stops=lambda: {"a-0": time.time()})
    assert "was stopped during startup" in err.value.message and not err.value.out_of_memory


def test_status_keeps_an_out_of_memory_failure_when_the_restart_policy_brought_it_back(fake, cli, write_config):
    model_in_volume(fake, "m.gguf", layers=30)
    fake.images.add(LLAMA)
    path = write_config('[services.llamacpp]\ndefault_model = "m.gguf"\nresources = { memory = "64m" }\n'
                        'memory_check = "warn"\ncontainer = "llamacpp-0"\n[services.open-webui]\nenabled = false\n')
    fake.oom_on_start.add("llamacpp-0")
    fake.restart_on_exit.add("llamacpp-0")
    fake.stop_pod = lambda name, timeout: None  # the restart policy wins every stop race
    result = cli("--config", path, "start", "llamacpp", "--timeout", "5")
    assert result.code == 1 and "ran out of memory" in result.err, result.text
    [row] = [r for r in json.loads(cli("--config", path, "status", "--json").out) if r["service"] == "llamacpp"]
    assert row["last_failure"] and row["last_failure"]["reason"] == "out of memory"


def test_a_pod_start_failure_shows_the_oci_runtimes_own_message():
    from airpods.runtime.podman_wire import pod_start_errors

    body = json.dumps({"Id": "abc", "Errs": [
        "starting container 1a: internal libpod error",
        "runc create failed: unable to start container process: error during container init: error reopening "
        "/dev/null inside container: open /dev/null: operation not permitted: OCI permission denied"]}).encode()
    errors = pod_start_errors(body)
    assert errors[0].startswith("runc create failed") and "operation not permitted" in errors[0]
    assert pod_start_errors(b"") == [] and pod_start_errors(b"not json") == []


def test_a_port_someone_else_holds_is_named_with_who_to_ask():
    from airpods.runtime.podman_wire import OCI_HINT, start_refused

    held = ["starting container 5853: cannot listen on the TCP port: listen tcp4 127.0.0.1:8080: bind: address "
            "already in use", "starting container b4f7: a dependency of container b4f7 failed to start"]
    message, hint = start_refused("llamacpp-0", held)
    assert message == "start container llamacpp-0: host port 127.0.0.1:8080 is held by another process"
    assert "ss -ltnp 'sport = :8080'" in hint and "podman system service" in hint
    other = start_refused("x-0", ["runc create failed: error reopening /dev/null"])
    assert other == ("start container x-0: the OCI runtime refused: runc create failed: error reopening /dev/null",
                     OCI_HINT)

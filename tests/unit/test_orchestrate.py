"""start/stop planning and convergence against the in-memory runtime: assert resulting state."""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading

import pytest

from airpods.errors import RuntimeFailure, StartFailure, UsageError
from airpods.orchestrate.events import Silent
from airpods.orchestrate.start import start
from airpods.orchestrate.stop import stop_services
from airpods.plan.spec import LABEL_HASH, HealthSpec, PortSpec, ServiceSpec, VolumeSpec
from airpods.runtime.fake import FakeRuntime
from tests.unit.builders import spec


def run(rt, specs, names, **kw):
    return start(rt, {s.name: s for s in specs}, names, Silent(), network="airpods",
                 models_volume="airpods_llamacpp_models", **kw)


@pytest.fixture
def rt():
    return FakeRuntime(images={f"localhost/test/{n}:1" for n in ("a", "b", "c")})


def test_start_creates_network_volume_pod_and_running_container(rt):
    a = spec("a")
    outcomes = run(rt, [a], ["a"])
    assert "airpods" in rt.networks and "a_data" in rt.volumes
    assert rt.pods["a"].spec.ports == a.ports
    assert rt.containers["a-0"].running and rt.containers["a-0"].labels[LABEL_HASH] == a.spec_hash
    assert [o.action for o in outcomes] == ["create"]


def test_unchanged_running_spec_is_a_noop(rt):
    a = spec("a")
    run(rt, [a], ["a"])
    before = rt.containers["a-0"]
    outcomes = run(rt, [a], ["a"])
    assert outcomes[0].action == "noop" and rt.containers["a-0"] is before


def test_changed_spec_recreates_and_keeps_volumes(rt):
    a = spec("a")
    run(rt, [a], ["a"])
    rt.volumes["a_data"]["model.gguf"] = b"weights"
    changed = dataclasses.replace(a, env={"NEW": "1"})
    outcomes = run(rt, [changed], ["a"])
    assert outcomes[0].action == "recreate"
    assert rt.containers["a-0"].labels[LABEL_HASH] == changed.spec_hash
    assert rt.volumes["a_data"] == {"model.gguf": b"weights"}


def test_stopped_container_is_started_not_recreated(rt):
    a = spec("a")
    run(rt, [a], ["a"])
    stop_services(rt, "default", {"a": a}, ["a"], timeout=1, remove=False)
    assert not rt.containers["a-0"].running
    outcomes = run(rt, [a], ["a"])
    assert outcomes[0].action == "start" and rt.containers["a-0"].running


def test_dependencies_start_first_and_are_included(rt):
    a, b = spec("a"), spec("b", depends_on=("a",))
    run(rt, [a, b], ["b"])
    assert rt.containers["a-0"].running and rt.containers["b-0"].running


def test_busy_port_fails_before_anything_is_created(rt):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        a = spec("a", ports=(PortSpec(holder.getsockname()[1], 8080),))
        with pytest.raises(UsageError) as err:
            run(rt, [a], ["a"])
        assert str(holder.getsockname()[1]) in err.value.message and "'a'" in err.value.message
        assert err.value.exit_code == 2
        assert rt.pods == {} and rt.containers == {} and rt.networks == set() and rt.volumes == {}
    finally:
        holder.close()


def test_missing_model_fails_with_exit_2_and_lists_models(rt):
    llama = spec("a", kind="llamacpp", command=("--model", "/models/missing.gguf"),
                 volumes=(VolumeSpec("airpods_llamacpp_models", "/models", "ro"),))
    with pytest.raises(UsageError) as err:
        run(rt, [llama], ["a"])
    assert "missing.gguf" in err.value.message and "airpods models import" in err.value.hint
    assert rt.pods == {} and rt.containers == {}


def test_container_exiting_during_startup_fails_fast(rt):
    a = spec("a", health=HealthSpec("/health", (200, 299), 30.0))
    rt.exit_on_start["a-0"] = 3
    rt.log_lines["a-0"] = ["booting", "fatal: no config"]
    with pytest.raises(StartFailure) as err:
        run(rt, [a], ["a"])
    assert "exit code 3" in err.value.message and "fatal: no config" in err.value.details


def test_missing_image_is_pulled_and_unreachable_fails(rt):
    a = spec("a", image="docker.io/library/thing:1")
    run(rt, [a], ["a"])
    assert "docker.io/library/thing:1" in rt.images
    b = spec("b", image="quay.io/nope/nothing:1")
    rt.unreachable.add("quay.io/nope/nothing:1")
    with pytest.raises(RuntimeFailure):
        run(rt, [b], ["b"])
    assert "b" not in rt.pods


def test_stop_keeps_volumes_and_remove_removes_pods_only(rt):
    a = spec("a")
    run(rt, [a], ["a"])
    results = stop_services(rt, "default", {"a": a}, ["a"], timeout=1, remove=True)
    assert results[0].result == "removed"
    assert rt.pods == {} and rt.containers == {} and "a_data" in rt.volumes
    assert stop_services(rt, "default", {"a": a}, ["a"], timeout=1, remove=False)[0].result == "absent"


class _Stages(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self):  # noqa: N802
        type(self).calls += 1
        self.send_response(503 if type(self).calls < 3 else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def started_behind(rt, server) -> ServiceSpec:
    """Service "a" created and started in the fake runtime, its health URL on `server`."""
    a = spec("a", ports=(PortSpec(server.server_address[1], 8080),), health=HealthSpec("/health", (200, 299), 10.0))
    rt.ensure_network("airpods")
    rt.create_pod(a)
    rt.create_container(a)
    rt.start_container("a-0")
    return a


def test_health_wait_reports_loading_then_healthy(rt):
    import time

    from airpods.orchestrate.start import wait_healthy

    server = http.server.HTTPServer(("127.0.0.1", 0), _Stages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        a = started_behind(rt, server)
        reporter = Silent()
        seconds = wait_healthy(rt, a, reporter, 10.0, time.monotonic())
        assert [s for _, s in reporter.stages] == ["loading (HTTP 503)", "loading (HTTP 503)"]
        assert _Stages.calls == 3 and seconds < 2.0
    finally:
        server.shutdown()


class _LoadsForOneSecond(http.server.BaseHTTPRequestHandler):
    calls = 0
    began = 0.0

    def do_GET(self):  # noqa: N802
        import time

        type(self).calls += 1
        self.send_response(503 if time.monotonic() - type(self).began < 1.0 else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_health_is_polled_often_and_the_container_state_seldom(rt):
    """While a model loads, its health URL every 20 ms at most (healthy is seen soon after it is),
    the container's state early and then about every 100 ms (an inspect costs Podman CPU the load
    could use; the early reads catch a crash before a restart policy hides its exit code)."""
    import time

    from airpods.orchestrate.start import wait_healthy

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoadsForOneSecond)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    inspects = []
    real_inspect = rt.inspect
    rt.inspect = lambda name: inspects.append(time.monotonic()) or real_inspect(name)
    try:
        a = started_behind(rt, server)
        _LoadsForOneSecond.began = time.monotonic()
        wait_healthy(rt, a, Silent(), 10.0, time.monotonic(), restarts=0)
        polls = _LoadsForOneSecond.calls
        assert polls >= 25, polls  # 20 ms apart: ~45 in the second (backing off to 100 ms: ~13)
        assert 5 <= len(inspects) <= polls / 3, (len(inspects), polls)  # ~12 (every poll before: ~13)
        # Read early, then less often: a crash's exit code is seen before a restart policy acts.
        assert inspects[1] - inspects[0] < 0.05 and inspects[-1] - inspects[-2] >= 0.09, inspects[:3]
    finally:
        server.shutdown()


def test_health_timeout_fails(rt):
    a = spec("a", health=HealthSpec("/health", (200, 299), 0.3))
    with pytest.raises(StartFailure) as err:
        run(rt, [a], ["a"])
    assert "not healthy after 0.3s" in err.value.message


def test_stop_order_honours_depends_on(rt):
    a, b, c = spec("a"), spec("b", depends_on=("a",)), spec("c", depends_on=("b",))
    specs = {s.name: s for s in (a, b, c)}
    run(rt, [a, b, c], ["c"])
    results = stop_services(rt, "default", specs, ["a", "b", "c"], timeout=1, remove=False)
    assert [r.service for r in results] == ["c", "b", "a"]
    assert not any(s.running for s in rt.containers.values())
    # Stopping only a dependency leaves its dependents alone (stop never adds services).
    run(rt, [a, b, c], ["c"])
    stop_services(rt, "default", specs, ["a"], timeout=1, remove=False)
    assert rt.containers["c-0"].running and not rt.containers["a-0"].running


def test_no_start_or_stop_path_removes_a_volume(rt):
    a = spec("a")
    run(rt, [a], ["a"])
    run(rt, [dataclasses.replace(a, env={"X": "1"})], ["a"])  # recreate
    stop_services(rt, "default", {"a": a}, ["a"], timeout=1, remove=True)
    assert "a_data" in rt.volumes


class _UiBeforeModel(http.server.BaseHTTPRequestHandler):
    """llama-server with its web UI: / answers at once, /health says 503 until the model loaded."""

    health_calls = 0

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            type(self).health_calls += 1
            self.send_response(503 if type(self).health_calls < 3 else 200)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_llamacpp_is_healthy_only_when_slash_health_is(rt):
    import time

    from airpods.orchestrate.start import wait_healthy

    server = http.server.HTTPServer(("127.0.0.1", 0), _UiBeforeModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        a = spec("a", kind="llamacpp", ports=(PortSpec(server.server_address[1], 8080),),
                 health=HealthSpec("/", (200, 299), 10.0, ("/health",)))
        rt.ensure_network("airpods")
        rt.create_pod(a)
        rt.create_container(a)
        rt.start_container("a-0")
        reporter = Silent()
        wait_healthy(rt, a, reporter, 10.0, time.monotonic())
        assert [s for _, s in reporter.stages] == ["loading (HTTP 503)", "loading (HTTP 503)"]
        assert _UiBeforeModel.health_calls == 3
    finally:
        server.shutdown()

"""Three airpods stacks on this machine as three hosts, with real parts: hosts A and B are each a
llama-server router behind their own gateway (Caddy) on their own port of this machine's address;
the hub has a gateway and the hub (HAProxy, Debian's 2.6) with A and B added by `airpods hosts
add`. A serves x and y, B serves y and z. Through the hub's gateway, with a person's key and the
official `openai` client: every model answered, y spread over A and B (each host's access log
counts the hub's requests), A's gateway stopped -> y still answered within the stated bound and x
refused at once with an OpenAI-shaped error naming it, A back -> x answered again; a wrong CA is
refused before anything is sent. The hub's Open WebUI (a real one) lists every host's models and
answers a chat with a model only B serves."""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import run_cli
from tests.e2e.builders import CADDY_IMAGE, HAPROXY_IMAGE, call, gateway_table
from tests.podman_env import LLAMA_IMAGE, OPENWEBUI_IMAGE, PodmanRun, free_port, image_exists, need, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.gateway]


def this_address() -> str | None:
    """This machine's own non-loopback address: the hub runs in a container, where 127.0.0.x is
    its own loopback, so the hosts' gateways listen where a container reaches the machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


class Host:
    def __init__(self, name: str, workdir: Path, listen: str):
        self.name, self.run, self.listen, self.port = name, PodmanRun(), listen, free_port()
        self.dir = workdir / name
        self.path = self.dir / "airpods.toml"
        self.env = {"XDG_DATA_HOME": str(self.dir / "data"), "XDG_CONFIG_HOME": str(self.dir / "config"),
                    "XDG_CACHE_HOME": str(self.dir / "cache")}
        self.url = f"https://{listen}:{self.port}"
        self.ca = self.dir / "ca.pem"

    def cli(self, *args: str, stdin: str | None = None):
        import io

        with mock.patch.dict(os.environ, self.env), mock.patch("sys.stdin", io.StringIO(stdin or "")):
            return run_cli("--config", str(self.path), *args)

    def write(self, models: tuple[str, ...] = (), hub: bool = False) -> None:
        rid = self.run.id
        text = self.run.header(keep=("open-webui",) if hub else ())
        if models:
            text += f"""
[services.rt]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "rt-{rid}"
container = "rt-{rid}-0"
network_aliases = ["rt-{rid}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
max_loaded = 2
default_model = "{models[0]}"
[services.rt.command_args]
ctx_size = 1024
no_webui = true
""" + "".join(f'[services.rt.models.{m}]\nfile = "{m}.gguf"\n' for m in models)
        if hub:
            self.webui = free_port()
            text += f"""
[services.hub]
image = "{HAPROXY_IMAGE}"
pod = "hub-{rid}"
container = "hub-{rid}-0"
network_aliases = ["hub-{rid}"]

[services.open-webui]
image = "{OPENWEBUI_IMAGE}"
pod = "open-webui-{rid}"
container = "open-webui-{rid}-0"
ports = [{{ host = {self.webui}, container = 8080 }}]
volumes = [{{ source = "webui_{rid}_data", target = "/app/backend/data" }}]
health = {{ path = "/health", timeout = 240 }}
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
RAG_EMBEDDING_ENGINE = "openai"
"""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text + gateway_table(rid, self.port, f'listen = "{self.listen}"'))

    def access_count(self, person: str) -> int:
        logs = self.cli("logs", "gateway", "-n", "0").out
        return sum(1 for line in logs.splitlines() if f" {person} " in line and "/v1/chat/completions 200" in line)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, smollm2):
    for image, script in ((LLAMA_IMAGE, "build-llamacpp-image.sh"), (CADDY_IMAGE, "build-caddy-image.sh"),
                          (HAPROXY_IMAGE, "build-haproxy-image.sh"), (OPENWEBUI_IMAGE, "build-openwebui-image.sh")):
        need(image_exists(image), f"{image} is not built", f"run scripts/{script}")
    address = this_address()
    need(address is not None, "this machine has no non-loopback IPv4 address for the hosts' gateways",
         "run the test on a machine with a network interface")
    workdir = tmp_path_factory.mktemp("hosts")
    a, b, hub = Host("a", workdir, address), Host("b", workdir, address), Host("hub", workdir, "127.0.0.4")
    a.write(("x", "y"))
    b.write(("y", "z"))
    hub.write(hub=True)
    try:
        for host, models in ((a, ("x", "y")), (b, ("y", "z"))):
            for m in models:
                done = host.cli("models", "import", str(smollm2), "--name", f"{m}.gguf")
                assert done.code == 0, done.text
            host.key = host.cli("keys", "add", "hub").out.strip()  # the key this host gives the hub
            started = host.cli("start")
            assert started.code == 0, started.text
            assert host.cli("keys", "ca", "-o", str(host.ca)).code == 0
        yield a, b, hub
    finally:
        for host in (a, b, hub):
            host.run.cleanup()


def client(hub: Host, key: str):
    import openai

    verify = ssl.create_default_context(cafile=str(hub.ca))
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=key, max_retries=0, timeout=60,
                         http_client=openai.DefaultHttpx2Client(verify=verify))


def ask(c, model: str) -> str:
    answer = c.chat.completions.create(model=model, max_tokens=4, temperature=0,
                                       messages=[{"role": "user", "content": "Say hi."}])
    return answer.choices[0].message.content or ""


def test_a_hub_routes_by_model_balances_and_fails_over(hosts):
    import openai

    a, b, hub = hosts
    config_before = hub.path.read_text()
    # A wrong CA (B's for A): refused in the TLS handshake, nothing saved, nothing sent.
    seen = a.access_count("hub")
    wrong = hub.cli("hosts", "add", "a", a.url, "--ca", str(b.ca), stdin=a.key + "\n")
    assert wrong.code == 2 and "not trusted" in wrong.err and "nothing was saved" in wrong.err, wrong.text
    assert hub.path.read_text() == config_before and a.access_count("hub") == seen

    for host in (a, b):
        added = hub.cli("hosts", "add", host.name, host.url, "--ca", str(host.ca), stdin=host.key + "\n")
        assert added.code == 0, added.text
    assert a.key not in hub.path.read_text() and "[hosts.a]" in hub.path.read_text()
    started = hub.cli("start")
    assert started.code == 0, started.text
    assert "3 models routed across 2 of 2 members" in started.err, started.text
    assert hub.cli("keys", "ca", "-o", str(hub.ca)).code == 0
    alice = hub.cli("keys", "add", "alice").out.strip()

    c = client(hub, alice)
    deadline = time.monotonic() + 20
    while True:  # Caddy reads the new key file within a second or two
        try:
            listed = sorted(m.id for m in c.models.list())
            break
        except (openai.AuthenticationError, openai.APIConnectionError):
            assert time.monotonic() < deadline, "alice's key was not taken within 20 s"
            time.sleep(0.3)
    assert listed == ["x", "y", "z"]  # the union, each id once
    for model in ("x", "y", "z"):
        assert ask(c, model), model
    before = {h.name: h.access_count("hub") for h in (a, b)}
    for _ in range(6):
        assert ask(c, "y")
    spread = {h.name: h.access_count("hub") - before[h.name] for h in (a, b)}
    print(f"y's six requests: {spread}")
    assert spread["a"] >= 1 and spread["b"] >= 1 and sum(spread.values()) == 6
    top = {r["service"]: r for r in json.loads(hub.cli("top", "--json", "hub").out)}
    assert top["a"]["kind"] == "host" and top["a"]["state"] == "up", top  # from HAProxy's own log
    assert top["a"]["requests_last_minute"] >= spread["a"] and top["b"]["requests_last_minute"] >= spread["b"], top
    assert top["hub"]["requests_last_minute"] >= 9 and top["a"]["errors_last_minute"] == 0, top

    webui_sees_every_host(hub, b)

    with pytest.raises(openai.NotFoundError) as unknown:
        ask(c, "nope")
    assert "model nope is served by no" in unknown.value.body["message"]

    status = {r["service"]: r for r in json.loads(hub.cli("status", "--json").out)}
    assert status["hub"]["state"] == "running" and status["b"]["kind"] == "host" and status["b"]["state"] == "reachable"
    listed = {r["name"]: r for r in json.loads(hub.cli("hosts", "list", "--json").out)}
    assert listed["a"]["reachable"] and sorted(listed["b"]["models"]) == ["y", "z"] and listed["a"]["tls_expires"]

    # A's gateway goes away: y goes to B within the bound, x is refused at once, naming x and A.
    from airpods.plan.hub import TAKEN_OUT_WITHIN

    assert a.cli("stop", "gateway").code == 0
    stopped = time.monotonic()
    assert ask(c, "y")  # a connection refused is retried on B at once
    refused = None
    while time.monotonic() - stopped < TAKEN_OUT_WITHIN + 3:
        t0 = time.monotonic()
        try:
            ask(c, "x")
        except openai.APIStatusError as exc:
            if exc.status_code == 503 and "no live host serves model x" in str(exc.body):
                refused = (time.monotonic() - stopped, time.monotonic() - t0, exc.body["message"])
                break
        time.sleep(0.2)
    assert refused is not None, "x was not refused with the hub's own error"
    print(f"x refused {refused[0]:.2f}s after A stopped, in {refused[1] * 1000:.0f} ms: {refused[2]}")
    assert refused[0] <= TAKEN_OUT_WITHIN + 1 and refused[1] < 1.0 and "host a" in refused[2]
    down = {r["service"]: r for r in json.loads(hub.cli("top", "--json", "hub").out)}["a"]
    assert down["state"] == "down" and "the hub's checks fail" in down["why"], down
    for _ in range(3):
        assert ask(c, "y")

    assert a.cli("start", "gateway").code == 0
    back = time.monotonic()
    while True:
        try:
            assert ask(c, "x")
            break
        except openai.APIStatusError:
            assert time.monotonic() - back < 15, "x was not answered again after A came back"
            time.sleep(0.5)
    print(f"x answered again {time.monotonic() - back:.2f}s after A's gateway was back")

    usage = {r["model"]: r for r in json.loads(hub.cli("keys", "usage", "alice", "--json").out)}
    assert {"x", "y", "z"} <= set(usage) and usage["y"]["requests"] >= 9, usage  # remote models, by name

    # A stream under way when its host dies ends at once, never hangs; what the client sees is a
    # stream cut short: no finish_reason, no [DONE] (the hub's Caddy 2.6 closes its side cleanly).
    import threading

    def long_stream():
        return c.chat.completions.create(model="z", max_tokens=900, stream=True, extra_body={"ignore_eos": True},
                                         messages=[{"role": "user", "content": "Count from 1 to 500, one per line."}])

    whole = sum(1 for _ in long_stream())  # the same stream, left alone
    assert whole > 800, whole
    stream = c.chat.completions.create(model="z", max_tokens=900, stream=True, extra_body={"ignore_eos": True},
                                       messages=[{"role": "user", "content": "Count from 1 to 500, one per line."}])
    t0, chunks, ended, last = time.monotonic(), 0, None, None
    try:
        for chunk in stream:
            chunks, last = chunks + 1, chunk
            if chunks == 1:
                threading.Thread(target=podman, args=("kill", f"gateway-{b.run.id}-0"), daemon=True).start()
        ended = "the stream ended"
    except Exception as exc:  # noqa: BLE001 - whatever the client raises: an error is the point
        ended = type(exc).__name__
    waited = time.monotonic() - t0
    cut = last is not None and last.choices and last.choices[0].finish_reason is None
    print(f"a stream from B when B's gateway was killed: {ended} after {chunks} chunks in {waited:.2f}s, "
          f"{'cut short' if cut else 'complete'}")
    assert waited < 30 and (ended != "the stream ended" or cut) and chunks < whole

    # The hub's keys for the hosts are nowhere but the secret store and the hub's env.
    render = hub.cli("config", "render", "--json").out
    assert a.key not in render and b.key not in render
    assert a.key not in hub.cli("logs", "hub", "-n", "0").out


def webui_sees_every_host(hub: Host, b: Host) -> None:
    """Open WebUI, wired to the hub, lists x, y and z and answers with z, which only B serves;
    signed in as the admin airpods made (its login is on behind a gateway)."""
    from airpods.paths import secrets_dir

    base = f"http://127.0.0.1:{hub.webui}"
    password = (secrets_dir(hub.env) / "open-webui-admin-password").read_text().strip()
    token = call(f"{base}/api/v1/auths/signin", body={"email": "admin@airpods.local", "password": password})["token"]
    models = {m["id"] for m in call(f"{base}/api/models", token)["data"]}
    assert {"x", "y", "z"} <= models, models
    before = b.access_count("hub")
    answer = call(f"{base}/api/chat/completions", token, {
        "model": "z", "stream": False, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}]})
    assert answer["choices"][0]["message"]["content"] is not None, answer
    assert b.access_count("hub") == before + 1  # through the hub, to B, with the key B gave the hub
    [row] = json.loads(hub.cli("status", "open-webui", "--json").out)
    assert row["wired_to"] == ["hub"], row


def test_the_hubs_kubernetes_export_is_a_configuration_haproxy_accepts(hosts, tmp_path):
    """What `export kube` puts in the hub's ConfigMap and Secret, laid out as its projected volume
    mounts them, checked by the same HAProxy (`haproxy -c`): the cluster's variant of hub.cfg
    (names resolved at start), the routes of the last refresh, the hosts' CAs."""
    import yaml

    from tests.podman_env import TEST_LABEL

    _a, _b, hub = hosts
    result = hub.cli("export", "kube")
    assert result.code == 0, result.text
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.out) if d}
    etc = tmp_path / "etc"
    (etc / "hosts").mkdir(parents=True)
    for name, text in docs[("ConfigMap", "hub-config")]["data"].items():
        (etc / name).write_text(text)
    for name, text in docs[("Secret", "hub-hosts")]["stringData"].items():
        (etc / "hosts" / name).write_text(text)
    assert "serves-" in (etc / "routes.cfg").read_text()  # the routes the e2e's refreshes wrote
    etc.chmod(0o755)
    checked = podman("run", "--rm", "--label", f"{TEST_LABEL}={hub.run.id}", "-v", f"{etc}:/etc/airpods-hub:ro,Z",
                     HAPROXY_IMAGE, "haproxy", "-c", "-f", "/etc/airpods-hub/hub.cfg", "-f",
                     "/etc/airpods-hub/routes.cfg", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""The HTTPS gateway with a real Caddy (Debian's package in a local image) in front of a real
llama-server router, a second llama-server and a real Open WebUI: the official `openai` client over
verified HTTPS with the exported CA, a key per person (401 without, with a wrong or a revoked one),
revocation without a restart, the access log naming the owner, the key nowhere else, and Open
WebUI's page with its login on in headless Chromium."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.builders import CADDY_IMAGE, FILES, chromium, gateway_table, router
from tests.podman_env import (
    LLAMA_IMAGE,
    OPENWEBUI_IMAGE,
    TEST_LABEL,
    PodmanRun,
    free_port,
    image_exists,
    need,
    podman,
)

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.openwebui, pytest.mark.gateway]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


class Stack:
    def __init__(self, run: PodmanRun, path: str, port: int, workdir: Path):
        self.run, self.path, self.port, self.workdir = run, path, port, workdir
        self.base = f"https://127.0.0.1:{port}"
        self.ca = workdir / "airpods-ca.pem"
        # The stack's own airpods folders, for every command on it (each test has its own otherwise).
        self.env = {"XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "config"),
                    "XDG_CACHE_HOME": str(workdir / "cache")}


def config(run: PodmanRun, gateway_port: int, webui_port: int, *, webui: bool = True, extra: str = "") -> str:
    rid = run.id
    text = run.header(keep=("open-webui",)) + router(f"rt-{rid}", max_loaded=2)
    text += f"""
[services.llamacpp-2]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "llamacpp-2-{rid}"
container = "llamacpp-2-{rid}-0"
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "{MODEL}"
[services.llamacpp-2.command_args]
model = "/models/{MODEL}"
alias = "second"
ctx_size = 512

[services.open-webui]
enabled = {str(webui).lower()}
image = "{OPENWEBUI_IMAGE}"
pod = "open-webui-{rid}"
container = "open-webui-{rid}-0"
ports = [{{ host = {webui_port}, container = 8080 }}]
volumes = [{{ source = "webui_{rid}_data", target = "/app/backend/data" }}]
health = {{ path = "/health", timeout = 240 }}
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
"""
    return text + gateway_table(rid, gateway_port, extra)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smollm2):
    need(image_exists(LLAMA_IMAGE), f"{LLAMA_IMAGE} is not built", "run scripts/build-llamacpp-image.sh")
    need(image_exists(OPENWEBUI_IMAGE), f"{OPENWEBUI_IMAGE} is not built", "run scripts/build-openwebui-image.sh")
    need(image_exists(CADDY_IMAGE), f"{CADDY_IMAGE} is not built", "run scripts/build-caddy-image.sh")
    run = PodmanRun()
    workdir = tmp_path_factory.mktemp("gateway")
    path = workdir / "gateway.toml"
    port = free_port()
    path.write_text(config(run, port, free_port()))
    made = Stack(run, str(path), port, workdir)
    try:
        for name in (*FILES, MODEL):
            imported = cli(made, "models", "import", str(smollm2), "--name", name)
            assert imported.code == 0, imported.text
        started = cli(made, "start", "gateway")
        assert started.code == 0, started.text
        yield made
    finally:
        run.cleanup()


def client(stack: Stack, key: str):
    import openai

    verify = ssl.create_default_context(cafile=str(stack.ca))  # the gateway's own CA, verified
    return openai.OpenAI(base_url=f"{stack.base}/v1", api_key=key, max_retries=0, timeout=120,
                         http_client=openai.DefaultHttpx2Client(verify=verify))


def code_of(stack: Stack, path: str, key: str | None, scheme: str = "Bearer") -> int:
    context = ssl.create_default_context(cafile=str(stack.ca))
    req = urllib.request.Request(stack.base + path, headers={"Authorization": f"{scheme} {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return 0  # met Caddy reloading after a key change (seen in CI): no answer, not a status


def started_at(container: str) -> str:
    return podman("inspect", "--format", "{{.State.StartedAt}}", container).stdout.strip()


def cli(stack: Stack, *args: str):
    import os
    from unittest import mock

    from tests.conftest import run_cli

    with mock.patch.dict(os.environ, stack.env):
        return run_cli("--config", stack.path, *args)


def test_person_keys_over_verified_https(stack):
    import openai

    rid = stack.run.id
    ca = cli(stack, "keys", "ca", "-o", str(stack.ca))
    assert ca.code == 0 and "SHA-256 fingerprint" in ca.err, ca.text
    alice = cli(stack, "keys", "add", "alice").out.strip()
    bob = cli(stack, "keys", "add", "bob").out.strip()
    deadline = time.monotonic() + 15  # Caddy reloads the key file within a second or two
    while code_of(stack, "/v1/models", bob) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)

    c = client(stack, alice)
    answer = c.chat.completions.create(model="a", max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "Say hi."}])
    assert answer.choices[0].message.content
    chunks = [ch for ch in c.chat.completions.create(model="a", max_tokens=8, stream=True,
                                                     messages=[{"role": "user", "content": "Count."}])]
    assert len(chunks) > 2 and any(ch.choices and ch.choices[0].delta.content for ch in chunks)
    vectors = c.embeddings.create(model="embed", input=["llamas", "alpacas"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 16
    assert {m.id for m in client(stack, bob).models.list()} >= {"a", "b", "embed"}
    second = f"{stack.base}/llamacpp-2/v1"
    import openai as o

    other = o.OpenAI(base_url=second, api_key=bob, max_retries=0, timeout=60,
                     http_client=o.DefaultHttpx2Client(verify=ssl.create_default_context(cafile=str(stack.ca))))
    assert [m.id for m in other.models.list()] == ["second"]

    assert code_of(stack, "/v1/models", alice, scheme="bearer") == 200  # the scheme is case-insensitive
    for key in (None, "apk-wrong", alice + "x"):
        assert code_of(stack, "/v1/models", key) == 401
        assert code_of(stack, "/llamacpp-2/v1/models", key) == 401
    with pytest.raises(openai.AuthenticationError) as denied:
        client(stack, "apk-not-a-key").models.list()
    assert denied.value.response.headers["www-authenticate"] == "Bearer"
    assert denied.value.body["type"] == "authentication_error"  # OpenAI's error shape, as JSON

    before = {c_: started_at(c_) for c_ in (f"rt-{rid}-0", f"gateway-{rid}-0", f"llamacpp-2-{rid}-0")}
    t0 = time.monotonic()
    assert cli(stack, "keys", "revoke", "bob").code == 0
    while code_of(stack, "/v1/models", bob) != 401:
        assert time.monotonic() - t0 < 10, "the revoked key still works after 10 s"
        time.sleep(0.1)
    print(f"revoked key refused after {time.monotonic() - t0:.2f}s")
    assert code_of(stack, "/v1/models", alice) == 200
    assert {c_: started_at(c_) for c_ in before} == before  # nothing restarted

    # The key is nowhere but the key file: not in any container, log, render or plain export.
    for container in (f"rt-{rid}-0", f"gateway-{rid}-0", f"llamacpp-2-{rid}-0", f"open-webui-{rid}-0"):
        assert alice not in podman("inspect", container).stdout
    logs = cli(stack, "logs", "gateway", "-n", "0").out
    assert alice not in logs and bob not in logs
    assert " alice " in logs and "/v1/chat/completions 200" in logs  # the owner, by name
    assert alice not in cli(stack, "config", "render", "--json").out
    assert alice not in cli(stack, "config", "render", "--json", "--show-secrets").out
    assert alice not in cli(stack, "export", "kube").out
    import yaml

    shown = list(yaml.safe_load_all(cli(stack, "export", "kube", "--show-secrets").out))
    assert [d["metadata"]["name"] for d in shown if alice in json.dumps(d)] == ["gateway-keys"]
    listed = json.loads(cli(stack, "keys", "list", "--json").out)
    assert [k["name"] for k in listed] == ["alice"] and listed[0]["last_used"]
    status = {r["service"]: r for r in json.loads(cli(stack, "status", "--json").out)}
    assert status["gateway"]["health"] == "healthy" and status["gateway"]["url"] == stack.base
    assert status["gateway"]["ca_fingerprint"] in ca.err


def served_spki(stack: Stack) -> str:
    """base64 SHA-256 of the public key the gateway serves (what Chromium's SPKI allow-list takes):
    the browser then accepts this one certificate, the way a client that trusts the CA would."""
    import base64
    import hashlib
    import subprocess

    pem = ssl.get_server_certificate(("127.0.0.1", stack.port))
    key = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True, text=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=key.encode(), capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_open_webui_through_the_gateway_with_its_login_on(stack):
    if not stack.ca.exists():
        assert cli(stack, "keys", "ca", "-o", str(stack.ca)).code == 0
    context = ssl.create_default_context(cafile=str(stack.ca))
    with urllib.request.urlopen(f"{stack.base}/api/config", timeout=30, context=context) as resp:
        features = json.loads(resp.read())["features"]
    assert features["auth"] is True  # WEBUI_AUTH forced on behind the gateway
    assert features["enable_signup"] is False  # airpods made the admin: no sign-up at all

    driver = chromium(f"--ignore-certificate-errors-spki-list={served_spki(stack)}")
    try:
        driver.get(f"{stack.base}/")
        # Not signed in: the app sends the browser to its sign-in page, and no chat is reachable.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "/auth" not in driver.current_url:
            time.sleep(0.3)
        assert "/auth" in driver.current_url and driver.current_url.startswith(stack.base), driver.current_url
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not driver.find_elements("css selector", "input[type=password]"):
            buttons = [b for b in driver.find_elements("css selector", "button") if "Get started" in b.text]
            if buttons:
                buttons[0].click()
            time.sleep(0.3)
        body = driver.find_element("tag name", "body").text
        assert driver.find_elements("css selector", "input[type=password]"), (driver.current_url, body[:800])
        assert "Open WebUI" in driver.title
        assert "Create Admin" not in driver.page_source and "Sign up" not in body, body[:800]  # sign-in only
    finally:
        driver.quit()


STRANGER = """
import http.client, json, socket, ssl
ip = socket.gethostbyname("gateway")  # the gateway's address on the network: not loopback
context = ssl._create_unverified_context()  # a stranger trusts nothing and checks nothing
def call(method, path, body=None):
    conn = http.client.HTTPSConnection(ip, 8443, context=context, timeout=60)
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers={"Host": "127.0.0.1:8443", "Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")[:20000]
eve = {"name": "Eve", "email": "eve@example.com", "password": "Eve-pass-1234"}
print(json.dumps({"me": socket.gethostbyname(socket.gethostname()), "gateway": ip,
                  "page": call("GET", "/auth")[0], "config": call("GET", "/api/config"),
                  "signup": call("POST", "/api/v1/auths/signup", eve),
                  "signin": call("POST", "/api/v1/auths/signin", {k: eve[k] for k in ("email", "password")})}))
"""


def test_a_stranger_beyond_loopback_cannot_create_the_first_account(stack):
    """Open WebUI behind the gateway, reached from another address (a container on the stack's
    network, straight at the gateway) on a fresh stack: the page answers, but its first account
    is airpods' admin, made headlessly at its first start, and sign-up is closed to everyone."""
    import ipaddress

    from airpods.paths import secrets_dir

    name = f"stranger-{stack.run.id}"
    probe = podman("run", "--rm", "--name", name, "--network", stack.run.network, "--entrypoint", "python3",
                   "--label", f"{TEST_LABEL}={stack.run.id}", OPENWEBUI_IMAGE, "-c", STRANGER, check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert not ipaddress.ip_address(seen["me"]).is_loopback and not ipaddress.ip_address(seen["gateway"]).is_loopback
    assert seen["page"] == 200  # Open WebUI answers the stranger...
    assert json.loads(seen["config"][1])["features"]["enable_signup"] is False
    assert seen["signup"][0] == 403, seen["signup"]  # ...who cannot make the first account
    assert seen["signin"][0] in (400, 401, 403), seen["signin"]

    # The first account is airpods' own admin: its password is in airpods' 0600 secret file.
    password = (secrets_dir(stack.env) / "open-webui-admin-password").read_text().strip()
    assert password not in podman("logs", f"open-webui-{stack.run.id}-0").stdout
    req = urllib.request.Request(f"{stack.base}/api/v1/auths/signin", method="POST",
                                 data=json.dumps({"email": "admin@airpods.local", "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    if not stack.ca.exists():
        assert cli(stack, "keys", "ca", "-o", str(stack.ca)).code == 0
    with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context(cafile=str(stack.ca))) as resp:
        me = json.loads(resp.read())
    assert me["role"] == "admin" and me["email"] == "admin@airpods.local"
    rendered = cli(stack, "config", "render", "open-webui", "--json").out
    assert password not in rendered and json.loads(rendered)["env"]["WEBUI_ADMIN_PASSWORD"] == "********"


def test_a_gateway_beyond_loopback_without_keys_refuses_to_start(tmp_path):
    from tests.conftest import run_cli

    run = PodmanRun()
    path = tmp_path / "wide.toml"
    path.write_text(run.header() + gateway_table(run.id, free_port(), 'listen = "0.0.0.0"'))
    try:
        result = run_cli("--config", str(path), "start", "gateway")
        assert result.code == 2 and "no key defined" in result.err, result.text
        assert podman("pod", "exists", f"gateway-{run.id}", check=False).returncode != 0
        assert podman("volume", "exists", f"gateway_{run.id}_data", check=False).returncode != 0
    finally:
        run.cleanup()


def test_the_users_own_certificate_is_served(tmp_path):
    """tls_cert/tls_key instead of the local CA: clients verify against the user's certificate."""
    import subprocess

    from tests.conftest import run_cli

    need(image_exists(CADDY_IMAGE), f"{CADDY_IMAGE} is not built", "run scripts/build-caddy-image.sh")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=airpods test",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    key.chmod(0o600)
    run, port = PodmanRun(), free_port()
    path = tmp_path / "own.toml"
    path.write_text(run.header() + gateway_table(run.id, port, f'tls_cert = "{cert}"\ntls_key = "{key}"'))
    try:
        started = run_cli("--config", str(path), "start", "gateway")
        assert started.code == 0, started.text
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=30, context=context) as resp:
            assert resp.status == 200
        served = ssl.get_server_certificate(("127.0.0.1", port))
        assert "".join(served.split()) == "".join(cert.read_text().split())
        ca = run_cli("--config", str(path), "keys", "ca")
        assert ca.code == 2 and "your own certificate" in ca.err
    finally:
        run.cleanup()


def test_chat_through_the_gateway_with_a_persons_key_and_its_ca(stack):
    import os
    from unittest import mock

    from tests.conftest import run_cli

    key = cli(stack, "keys", "add", "carol").out.strip()
    if not stack.ca.exists():
        assert cli(stack, "keys", "ca", "-o", str(stack.ca)).code == 0
    deadline = time.monotonic() + 15  # Caddy reloads the key file within a second or two
    while code_of(stack, "/v1/models", key) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    def ask(*target: str):
        """The tiny test model at its default temperature now and then stops at once (the CLI then
        says "answer is empty" on stderr): each try must succeed, one of three must have text."""
        for _ in range(3):
            result = run_cli("--config", stack.path, "chat", "--gateway", *target, "Say hi to me, please.")
            assert result.code == 0, result.text
            if result.out.strip():
                return result
            assert "answer is empty" in result.err, result.text
        raise AssertionError(f"three empty answers: {result.text}")

    with mock.patch.dict(os.environ, {**stack.env, "AIRPODS_KEY": key}):
        answer, second = ask(), ask("llamacpp-2")
    assert key not in answer.text + second.text  # the key is never printed
    with mock.patch.dict(os.environ, {**stack.env, "AIRPODS_KEY": "apk-not-a-key"}):
        refused = run_cli("--config", stack.path, "chat", "--gateway", "Say hi.")
    assert refused.code == 1 and "HTTP 401" in refused.err and "apk-not-a-key" not in refused.text
    log = podman("logs", f"gateway-{stack.run.id}-0", check=False)
    assert "carol" in log.stdout + log.stderr  # the gateway saw carol's key, not llama.cpp's


def test_keys_usage_counts_each_persons_requests_and_tokens_and_keeps_a_revoked_ones(stack):
    if not stack.ca.exists():
        assert cli(stack, "keys", "ca", "-o", str(stack.ca)).code == 0
    dave = cli(stack, "keys", "add", "dave").out.strip()
    erin = cli(stack, "keys", "add", "erin").out.strip()
    deadline = time.monotonic() + 15
    while code_of(stack, "/v1/models", erin) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    for key, n in ((dave, 2), (erin, 1)):
        for _ in range(n):
            answer = client(stack, key).chat.completions.create(
                model="a", max_tokens=8, messages=[{"role": "user", "content": "Say hi."}])
            assert answer.usage.completion_tokens > 0
    time.sleep(0.5)  # the access log entry is written as the response ends
    rows = json.loads(cli(stack, "keys", "usage", "--json").out)
    mine = {r["person"]: r for r in rows if r["person"] in ("dave", "erin")}
    assert mine["dave"]["requests"] == 2 and mine["erin"]["requests"] == 1, rows
    for who in ("dave", "erin"):
        assert mine[who]["prompt_tokens"] > 0 and 0 < mine[who]["completion_tokens"] <= 8 * mine[who]["requests"]
        assert mine[who]["model"] == "a" and mine[who]["errors"] == 0 and mine[who]["unmatched"] == 0
    assert cli(stack, "keys", "revoke", "erin").code == 0
    after = {r["person"]: r for r in json.loads(cli(stack, "keys", "usage", "erin", "--json").out)}
    assert after["erin"]["requests"] == 1 and after["erin"]["completion_tokens"] == mine["erin"]["completion_tokens"]
    table = cli(stack, "keys", "usage")
    assert table.code == 0 and "dave" in table.out and erin not in table.text and dave not in table.text


def test_metrics_and_slots_are_not_served_to_a_persons_key_but_are_from_the_host(stack):
    if not stack.ca.exists():
        assert cli(stack, "keys", "ca", "-o", str(stack.ca)).code == 0
    key = cli(stack, "keys", "add", "frank").out.strip()
    deadline = time.monotonic() + 15
    while code_of(stack, "/v1/models", key) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    for path in ("/metrics", "/slots", "/v1/metrics", "/v1/slots", "/llamacpp-2/metrics", "/llamacpp-2/slots",
                 "/llamacpp-2/v1/slots"):
        assert code_of(stack, path, key) in (403, 404), path
    [row] = json.loads(cli(stack, "status", "llamacpp-2", "--json").out)
    base = row["url"].removesuffix("/v1")
    backend = (stack.workdir / "data" / "airpods" / "secrets" / "llamacpp-2-api-key").read_text().strip()
    for path in ("/metrics", "/slots"):
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {backend}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, path

"""What the end-to-end tests build the same way: configs of real services, clients of them, and
waits (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.podman_env import LLAMA_IMAGE, free_port, llama_table, need, podman

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_service(name: str, alias: str, model: str = MODEL, port: int | None = None) -> str:
    ports = f"{{ host = {port}, container = 8080 }}" if port else "{ container = 8080 }"
    return f"""
[services.{name}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{alias}"]
ports = [{ports}]
health = {{ path = "/health", timeout = 120 }}
default_model = "{model}"

[services.{name}.command_args]
model = "/models/{{{{ default_model }}}}"
alias = "{{{{ default_model | replace('.gguf', '') }}}}"
ctx_size = 2048
threads = 2
no_webui = true
"""


def chat(url: str, key: str | None, content: str = "Say hello in one word.", *, model: str | None = None,
         timeout: float = 60) -> tuple[int, dict]:
    """(status, answer) of one chat completion at URL (its /v1), of `model` when given."""
    body = json.dumps({**({"model": model} if model else {}), "messages": [{"role": "user", "content": content}],
                       "max_tokens": 16, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def api_key(isolated, service: str) -> str:
    return (isolated / "data" / "airpods" / "secrets" / f"{service}-api-key").read_text().strip()


def airpods(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command in its own process, as a shell runs it: stdout and stderr apart."""
    return subprocess.run([sys.executable, "-m", "airpods", *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=False)


def base_router(name: str, port: int, *, ctx: int = 1024) -> str:
    """A router of one model, base.gguf, on the local llama-server image."""
    return f"""
[services.{name}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {port}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "base"
[services.{name}.command_args]
ctx_size = {ctx}
no_webui = true
[services.{name}.models.base]
file = "base.gguf"
"""


FILES = ("chat-a.gguf", "chat-b.gguf", "embed-c.gguf")


def router(name: str, *, max_loaded: int = 1, idle: int | None = None, port: int | None = None) -> str:
    return f"""
[services.{name}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {port or free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
max_loaded = {max_loaded}
{f"idle_unload = {idle}" if idle else ""}
default_model = "a"
[services.{name}.command_args]
ctx_size = 1024
no_webui = true
[services.{name}.models.a]
file = "chat-a.gguf"
aliases = ["gpt-4o-mini", "small"]
load_on_startup = true
[services.{name}.models.b]
file = "chat-b.gguf"
command_args = {{ ctx_size = 512 }}
[services.{name}.models.embed]
file = "embed-c.gguf"
embeddings = true
"""


def chat_model(url: str, key: str, model: str) -> tuple[int, dict]:
    """One chat completion of a router's `model`."""
    return chat(url, key, "Say hello.", model=model, timeout=120)


CADDY_IMAGE = "localhost/airpods-test/caddy:2"
HAPROXY_IMAGE = "localhost/airpods-test/haproxy:2.6"  # the hub's (scripts/build-haproxy-image.sh)


def gateway_table(rid: str, port: int, extra: str = "", name: str = "gateway") -> str:
    """A [services.gateway] of a test's own: the local Caddy image, its pod, port and CA volume."""
    return f"""
[services.gateway]
enabled = true
image = "{CADDY_IMAGE}"
pod = "{name}-{rid}"
container = "{name}-{rid}-0"
ports = [{{ host = {port}, container = 8443 }}]
volumes = [{{ source = "{name}_{rid}_data", target = "/data" }}]
{extra}
"""


PYTHON_IMAGE = "localhost/airpods-test/debian-python:bookworm"


OLLAMA_STANDIN = r"""
import http.server, json
ANSWERS = {
    "/": "Ollama is running",
    "/api/version": {"version": "0.5.0"},
    "/api/tags": {"models": [{"name": "standin-llama:latest", "model": "standin-llama:latest",
                              "modified_at": "2026-01-01T00:00:00Z", "size": 1, "digest": "0",
                              "details": {"family": "llama"}}]},
    "/api/ps": {"models": []},
}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ANSWERS.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        text = body if isinstance(body, str) else json.dumps(body)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.end_headers()
        self.wfile.write(text.encode())
    def log_message(self, *a):
        print("ollama-standin", self.path, flush=True)
print("ollama stand-in listening", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", 11434), H).serve_forever()
"""


def call(url: str, token: str | None = None, body: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def webui_table(rid: str, port: int) -> str:
    """A test's own [services.open-webui]: the local image, offline, its login off, on `port`."""
    from tests.podman_env import OPENWEBUI_IMAGE

    return f"""
[services.open-webui]
image = "{OPENWEBUI_IMAGE}"
pod = "open-webui-{rid}"
container = "open-webui-{rid}-0"
ports = [{{ host = {port}, container = 8080 }}]
volumes = [{{ source = "webui_{rid}_data", target = "/app/backend/data" }}]
health = {{ path = "/health", timeout = 240 }}
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
WEBUI_AUTH = "false"
"""


def upload(base: str, token: str, name: str, text: str) -> str:
    """A text file uploaded to Open WebUI (it embeds it); its file id."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
    req = urllib.request.Request(f"{base}/api/v1/files/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())["id"]


def webui_models(base: str) -> tuple[str, set[str]]:
    token = call(f"{base}/api/v1/auths/signin", body={"email": "", "password": ""})["token"]
    return token, {m["id"] for m in call(f"{base}/api/models", token)["data"]}


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,800"]


def chromium(*extra: str):
    """Headless Chromium driven by the system chromedriver, with a fresh profile."""
    need(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None,
         "Chromium is not installed", "apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='airpods-chromium-')}", *extra]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def service(name: str, *, threads: int | None = None, webui: bool = False, health: str = "/health") -> str:
    return f"""
[services.{name}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "{health}", timeout = 120 }}
default_model = "{MODEL}"

[services.{name}.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = 1024
no_webui = {"false" if webui else "true"}
""" + (f"threads = {threads}\n" if threads else "")


HEALTH = {"interval": 2, "retries": 2, "start_period": 5, "probe_timeout": 2}  # quick checks, for the tests


def health_config(prun, name: str, keys: dict[str, object] | None = None, **health: object) -> str:
    """One llama.cpp service whose health is checked every few seconds (`health` adds or replaces
    keys of its health table, `keys` adds keys of its own table)."""
    return prun.header() + llama_table(name, MODEL, ctx=512, health={**HEALTH, **health}, **(keys or {}))


def host_pid(container: str) -> int:
    """The server's own process on the host (under Podman's init, which is State.Pid)."""
    from airpods.probes.caps import main_process

    pid = int(podman("inspect", "--format", "{{.State.Pid}}", container).stdout.strip() or 0)
    return main_process(pid) if pid else 0


def status_of(cli, path: str, name: str) -> dict:
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    return row


def wait_until(what, seconds: float, step: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    return what()

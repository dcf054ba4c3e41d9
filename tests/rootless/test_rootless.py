"""airpods as an unprivileged user with rootless Podman, end to end, with the real llama-server:
the same commands and config as root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.builders import MODEL, chat
from tests.podman_env import OPENWEBUI_IMAGE, free_port, podman
from tests.rootless.builders import llama, write_config

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.rootless]


def key_of(user, service: str) -> str:
    return (user.home / ".local" / "share" / "airpods" / "secrets" / f"{service}-api-key").read_text().strip()


def test_rootless_llamacpp_lifecycle(rootless_user, rl):
    user, svc = rootless_user, f"llm-{rl}"
    conf = write_config(user, rl, llama(svc, free_port()))

    def airpods(*args: str, timeout: float = 300):
        return user.run(str(user.airpods), "--config", str(conf), *args, timeout=timeout)

    imported = airpods("models", "import", str(user.model))
    assert imported.returncode == 0, imported.stderr
    started = airpods("start", svc)
    assert started.returncode == 0, started.stdout + started.stderr
    [row] = json.loads(airpods("status", svc, "--json").stdout)
    assert row["health"] == "healthy" and row["model"] == MODEL.removesuffix(".gguf")
    assert row["url"].startswith("http://127.0.0.1:")
    # Rootless on cgroups v1 cannot pin: the thread count carries the plan, and status says so.
    assert row["threads"] and row["cpuset_enforced"] in (False, True)
    if row["cpuset_enforced"] is False:
        assert "not enforced" in row["cpu_plan"]
    code, answer = chat(row["url"], key_of(user, svc))
    assert code == 200 and answer["choices"][0]["message"]["content"].strip()
    assert chat(row["url"], None)[0] == 401

    # It really is the user's Podman, not root's.
    assert user.podman("pod", "exists", svc).returncode == 0
    assert podman("pod", "exists", svc, check=False).returncode == 1
    key_file = user.home / ".local" / "share" / "airpods" / "secrets" / f"{svc}-api-key"
    assert key_file.stat().st_uid == user.home.stat().st_uid and oct(key_file.stat().st_mode & 0o777) == "0o600"

    logs = airpods("logs", svc, "-n", "50")
    assert logs.returncode == 0 and "model loaded" in logs.stdout
    assert airpods("stop", svc).returncode == 0
    again = airpods("start", svc)
    assert again.returncode == 0, again.stderr
    assert chat(row["url"], key_of(user, svc))[0] == 200

    doctor = json.loads(airpods("doctor", "--json").stdout)
    assert doctor["engine"]["mode"] == "rootless" and doctor["socket"]["from"] == "private podman system service"
    assert any("keep-groups" in line for line in doctor["engine"]["implications"])

    bad = airpods("models", "rm", "../../etc/passwd", "--yes")
    assert bad.returncode == 2 and "plain file name" in bad.stderr
    cleaned = airpods("clean", "--yes")
    assert cleaned.returncode == 0, cleaned.stderr
    assert user.podman("pod", "exists", svc).returncode == 1
    listed = json.loads(airpods("models", "list", "--json").stdout)
    assert [m["file"] for m in listed] == [MODEL]  # clean without --volumes keeps the models


def test_rootless_memory_limit_is_advisory_but_the_budget_applies(rootless_user, rl):
    user, svc = rootless_user, f"lim-{rl}"
    port = free_port()
    conf = write_config(user, rl, llama(svc, port, resources={"memory": "1g"}))
    tight = write_config(user, rl, llama(svc, port, resources={"memory": "64m"}), suffix="-tight")

    def airpods(path: Path, *args: str):
        return user.run(str(user.airpods), "--config", str(path), *args)

    assert airpods(conf, "models", "import", str(user.model)).returncode == 0
    refused = airpods(tight, "start", svc)  # the estimate is checked even where no limit is enforced
    assert refused.returncode == 2 and "64 MiB" in refused.stderr
    started = airpods(conf, "start", svc)
    assert started.returncode == 0, started.stderr
    [row] = json.loads(airpods(conf, "status", svc, "--json").stdout)
    enforced = "memory" in json.loads(airpods(conf, "doctor", "--json").stdout)["engine"]["limits_enforced"]
    assert row["memory_limit_enforced"] is enforced
    if not enforced:  # rootless on cgroups v1 (these machines): said, not silently dropped
        assert "advisory" in airpods(conf, "status", svc).stdout
    assert airpods(conf, "stop", svc, "--remove").returncode == 0


def test_rootless_low_port_is_refused_with_the_sysctl(rootless_user, rl):
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start <= 80:
        pytest.skip("this machine lets unprivileged users bind port 80")
    conf = write_config(rootless_user, rl, llama(f"low-{rl}", 80))
    out = rootless_user.run(str(rootless_user.airpods), "--config", str(conf), "start", f"low-{rl}")
    assert out.returncode == 2 and "net.ipv4.ip_unprivileged_port_start" in out.stderr
    assert "Traceback" not in out.stderr
    assert rootless_user.podman("network", "exists", f"airpods-rl{rl}").returncode == 1  # nothing created


def test_rootless_open_webui_reaches_llamacpp_by_alias(rootless_user, rl):
    """Alias resolution across pods on the user's network: Open WebUI lists llama.cpp's model."""
    from tests.e2e.builders import webui_models

    user = rootless_user
    user.give_image(OPENWEBUI_IMAGE)
    llm, web, web_port = f"llm-{rl}", f"web-{rl}", free_port()
    conf = write_config(user, rl, llama(llm, free_port()) + f"""
[services.{web}]
kind = "open-webui"
image = "{OPENWEBUI_IMAGE}"
network_aliases = ["{web}"]
ports = [{{ host = {web_port}, container = 8080 }}]
health = {{ path = "/health", timeout = 300 }}
[services.{web}.env]
ENABLE_OPENAI_API = "true"
OPENAI_API_BASE_URLS = "{{{{ backends.openai | map(attribute='url') | join(';') }}}}"
OPENAI_API_KEYS = "{{{{ backends.openai | map(attribute='api_key') | join(';') }}}}"
ENABLE_OLLAMA_API = "false"
ENABLE_PERSISTENT_CONFIG = "false"
WEBUI_AUTH = "false"
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
RAG_EMBEDDING_ENGINE = "openai"
WEBUI_SECRET_KEY = "{{{{ secret('open-webui-secret-key') }}}}"
""")
    airpods = lambda *a: user.run(str(user.airpods), "--config", str(conf), *a, timeout=600)  # noqa: E731
    assert airpods("models", "import", str(user.model)).returncode == 0
    started = airpods("start", web)  # starts llama.cpp first (dependency), then Open WebUI
    assert started.returncode == 0, started.stdout + started.stderr
    _, ids = webui_models(f"http://127.0.0.1:{web_port}")
    assert MODEL.removesuffix(".gguf") in ids
    assert airpods("stop").returncode == 0


def test_rootless_models_pull_list_rm_in_the_users_volume(rootless_user, rl, hub, tmp_path):
    from tests.integration.builders import fake_gguf

    user = rootless_user
    data = fake_gguf(tmp_path / "src.gguf", size=400_000)
    hub.repos["org/repo-GGUF"] = {"tiny-Q4_K_M.gguf": data}
    conf = write_config(user, rl, "")
    endpoint = os.environ["HF_ENDPOINT"]

    def airpods(*args: str):
        return user.run(str(user.airpods), "--config", str(conf), *args, extra_env={"HF_ENDPOINT": endpoint})

    pulled = airpods("models", "pull", "org/repo-GGUF/tiny-Q4_K_M.gguf")
    assert pulled.returncode == 0, pulled.stderr
    [entry] = json.loads(airpods("models", "list", "--json").stdout)
    assert entry["file"] == "tiny-Q4_K_M.gguf" and entry["size"] == 400_000
    mount = user.podman("volume", "inspect", "--format", "{{.Mountpoint}}", f"airpods_rl{rl}_models").stdout.strip()
    assert mount.startswith(str(user.home))  # the user's own storage, not root's
    assert Path(mount, "tiny-Q4_K_M.gguf").stat().st_uid == user.home.stat().st_uid
    assert airpods("models", "rm", "tiny-Q4_K_M.gguf", "--yes").returncode == 0
    assert json.loads(airpods("models", "list", "--json").stdout) == []


def test_rootless_gateway_keys_and_revocation(rootless_user, rl):
    """The HTTPS gateway in the user's Podman: its key file is the user's (0600), the CA verifies,
    a key answers, none and a revoked one do not."""
    import ssl
    import time
    import urllib.error
    import urllib.request

    from tests.e2e.builders import CADDY_IMAGE, gateway_table

    user = rootless_user
    user.give_image(CADDY_IMAGE)
    llm, port = f"llm-{rl}", free_port()
    conf = write_config(user, rl, llama(llm, free_port()) + gateway_table(rl, port, f'default = "{llm}"'))
    airpods = lambda *a: user.run(str(user.airpods), "--config", str(conf), *a, timeout=600)  # noqa: E731
    assert airpods("models", "import", str(user.model)).returncode == 0
    started = airpods("start", "gateway")
    assert started.returncode == 0, started.stdout + started.stderr
    key = airpods("keys", "add", "alice").stdout.strip()
    pem = airpods("keys", "ca").stdout
    assert key.startswith("apk-") and "BEGIN CERTIFICATE" in pem
    keys = user.home / ".local" / "share" / "airpods" / "gateway" / conf.stem / "etc" / "keys.caddy"
    assert keys.stat().st_uid == user.home.stat().st_uid and oct(keys.stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(cadata=pem)

    def code(k: str | None) -> int:
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/models",
                                     headers={"Authorization": f"Bearer {k}"} if k else {})
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    deadline = time.monotonic() + 15
    while code(key) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code(key) == 200 and code(None) == 401
    assert airpods("keys", "revoke", "alice").returncode == 0
    deadline = time.monotonic() + 10
    while code(key) != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code(key) == 401
    assert airpods("stop").returncode == 0


def test_rootless_a_frozen_server_is_restarted_and_counted(rootless_user, rl):
    """Health after start as an unprivileged user: the watcher (no systemd timers here) runs the
    checks through the user's own Podman, which restarts the frozen server."""
    import signal
    import time

    user, svc = rootless_user, f"frz-{rl}"
    health = {"interval": 2, "retries": 2, "start_period": 5, "probe_timeout": 2}
    conf = write_config(user, rl, llama(svc, free_port(), health))

    def airpods(*args: str, timeout: float = 300):
        return user.run(str(user.airpods), "--config", str(conf), *args, timeout=timeout)

    assert airpods("models", "import", str(user.model)).returncode == 0
    started = airpods("start", svc)
    assert started.returncode == 0, started.stdout + started.stderr
    [row] = json.loads(airpods("status", svc, "--json").stdout)
    key = key_of(user, svc)
    from airpods.probes.caps import main_process

    pid = main_process(int(user.podman("inspect", "--format", "{{.State.Pid}}", f"{svc}-0").stdout.strip()))
    os.kill(pid, signal.SIGSTOP)  # the server (under Podman's init)
    deadline = time.monotonic() + 40
    back = False
    while time.monotonic() < deadline and not back:
        time.sleep(0.5)
        now = user.podman("inspect", "--format", "{{.State.Pid}}", f"{svc}-0").stdout.strip()
        back = now not in ("", "0") and main_process(int(now)) != pid and chat(row["url"], key)[0] == 200
    assert back, "the frozen server was not restarted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        [after] = json.loads(airpods("status", svc, "--json").stdout)
        if after["restarts"]:
            break
        time.sleep(0.5)
    assert after["restarts"] == 1 and "unhealthy" in after["last_failure"]["reason"], after
    log = user.home / ".local" / "share" / "airpods" / "health"
    assert any("restarted" in f.read_text() for f in log.glob("*.log"))


def test_rootless_hub_routes_local_services_by_model(rootless_user, rl):
    """The hub (HAProxy, uid 99 in the user's namespace) behind the gateway in the user's Podman:
    its files read through the user's bind mount, two local services routed by the model each
    request names, the answer saying which one served it, a model nobody serves refused."""
    import ssl
    import time
    import urllib.error
    import urllib.request

    from tests.e2e.builders import CADDY_IMAGE, HAPROXY_IMAGE, gateway_table

    user = rootless_user
    user.give_image(CADDY_IMAGE)
    user.give_image(HAPROXY_IMAGE)
    one, two, port = f"one-{rl}", f"two-{rl}", free_port()
    hub = f"""
[services.hub]
enabled = true
image = "{HAPROXY_IMAGE}"
pod = "hub-{rl}"
container = "hub-{rl}-0"
network_aliases = ["hub-{rl}"]
"""
    body = llama(one, free_port(), alias="x") + llama(two, free_port(), alias="y") + hub + gateway_table(rl, port)
    conf = write_config(user, rl, body)
    airpods = lambda *a: user.run(str(user.airpods), "--config", str(conf), *a, timeout=600)  # noqa: E731
    assert airpods("models", "import", str(user.model)).returncode == 0
    key = airpods("keys", "add", "alice").stdout.strip()
    started = airpods("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "2 models routed across 2 of 2 members" in started.stderr, started.stderr
    context = ssl.create_default_context(cadata=airpods("keys", "ca").stdout)

    def ask(model: str) -> tuple[int, str, dict]:
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/chat/completions", data=json.dumps({
            "model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60, context=context) as resp:
                return resp.status, resp.headers.get("X-Airpods-Member", ""), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, "", json.loads(exc.read() or b"{}")

    deadline = time.monotonic() + 20
    while ask("x")[0] != 200 and time.monotonic() < deadline:  # Caddy reads the key file, HAProxy its routes
        time.sleep(0.3)
    assert ask("x")[:2] == (200, f"local-{one}") and ask("y")[:2] == (200, f"local-{two}")
    code, _, error = ask("nope")
    assert code == 404 and "model nope" in error["error"]["message"]
    assert airpods("stop").returncode == 0

"""A real Prometheus (Debian's package in a local image, run as the official one is) started by
airpods next to two real llama-servers: its scrape configuration comes from the services, it
reaches each /metrics with that service's key, and after three chats its HTTP API has the
predicted-tokens counter of each instance, labelled service, model and project."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from tests.e2e.builders import api_key, chat_model
from tests.podman_env import free_port, image_exists, llama_table, need

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
PROMETHEUS_IMAGE = "localhost/airpods-test/prometheus:2"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama(name: str) -> str:
    return llama_table(name, MODEL, ctx=512)


def query(port: int, promql: str, password: str | None) -> list[dict]:
    import base64

    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    headers = {"Authorization": "Basic " + base64.b64encode(f"airpods:{password}".encode()).decode()} \
        if password is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        return json.loads(resp.read())["data"]["result"]


def test_prometheus_scrapes_every_llama_service_with_its_labels(prun, cli, write_config, smollm2, isolated):
    need(image_exists(PROMETHEUS_IMAGE), f"{PROMETHEUS_IMAGE} is not built", "run scripts/build-prometheus-image.sh")
    one, two = prun.name("pa"), prun.name("pb")
    port = free_port()
    path = write_config(prun.header() + llama(one) + llama(two) + f"""
[services.prometheus]
enabled = true
image = "{PROMETHEUS_IMAGE}"
pod = "{prun.name('prom')}"
container = "{prun.name('prom')}-0"
ports = [{{ host = {port}, container = 9090 }}]
volumes = [{{ source = "prom_{prun.id}_data", target = "/prometheus" }}]
scrape_interval = "1s"
""")
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    started = cli("--config", path, "start")
    assert started.code == 0, started.text
    rendered = json.loads(cli("--config", path, "config", "render", "prometheus", "--json").out)
    (config_path, text), _web = rendered["config_files"].items()
    password = cli("--config", path, "keys", "prometheus").out.strip()
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:  # another local user, without the password
        query(port, "up", None)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError):
        query(port, "up", "not-the-password")
    assert api_key(isolated, one) not in text and api_key(isolated, one) not in json.dumps(rendered)
    for name in (one, two, one):
        [row] = json.loads(cli("--config", path, "status", name, "--json").out)
        code, answer = chat_model(row["url"], api_key(isolated, name), "x")
        assert code == 200 and answer["usage"]["completion_tokens"] > 0
    deadline, found = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        found = {r["metric"].get("service"): r for r in query(port, "llamacpp:tokens_predicted_total", password)}
        if all(n in found and float(found[n]["value"][1]) > 0 for n in (one, two)):
            break
        time.sleep(1)
    for name in (one, two):
        assert name in found and float(found[name]["value"][1]) > 0, found
        labels = found[name]["metric"]
        assert labels["project"] == f"t{prun.id}" and labels["model"] == MODEL
    up = {r["metric"]["service"]: r["value"][1] for r in query(port, "up", password)}
    assert up[one] == "1" and up[two] == "1"
    import subprocess

    check = subprocess.run(["podman", "healthcheck", "run", f"{prun.name('prom')}-0"], capture_output=True,
                           text=True, timeout=60, check=False)  # its own check, with the password on its port
    assert check.returncode == 0, check.stdout + check.stderr
    stopped = cli("--config", path, "stop", "prometheus")
    assert stopped.code == 0
    assert "prom_" + prun.id + "_data" in [v for v in __import__("subprocess").run(
        ["podman", "volume", "ls", "-q"], capture_output=True, text=True).stdout.split()]  # its data is kept

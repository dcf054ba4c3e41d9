"""Prometheus (kind = "prometheus") without a container: its scrape configuration computed from the
enabled services (a router's models each, the gateway's Caddy), no key in it or in render, the
keys as secret env written to files by its wrapper, and the exports that carry it."""

from __future__ import annotations

import json

import yaml

from tests.unit.builders import stack

PROM = """
[services.prometheus]
enabled = true
scrape_interval = "5s"
[services.chat]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
mode = "router"
ports = [{ container = 8080 }]
models = { a = { file = "SmolLM2-135M-Instruct.Q4_1.gguf" }, b = { file = "SmolLM2-135M-Instruct.Q4_1.gguf" } }
"""


def render(cli, path: str) -> dict:
    result = cli("--config", path, "config", "render", "prometheus", "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_the_scrape_configuration_covers_every_enabled_llama_service_and_the_gateway(rt, cli, write_config,
                                                                                    isolated):
    spec = render(cli, stack(write_config, extra=PROM))
    (path, text), (web_path, web) = spec["config_files"].items()
    assert path == str(isolated / "data" / "airpods" / "prometheus" / "lab" / "etc" / "prometheus.yml")
    assert web_path.endswith("/etc/web.yml") and "generated-on-first-start" in web  # render makes no secret
    config = yaml.safe_load(text)
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"llamacpp-llamacpp", "llamacpp-llamacpp-2", "llamacpp-chat-a", "llamacpp-chat-b",
                         "gateway-gateway"}
    one = jobs["llamacpp-llamacpp"]
    assert one["static_configs"] == [{"targets": ["llamacpp:8080"], "labels": {
        "service": "llamacpp", "model": "SmolLM2-135M-Instruct.Q4_1.gguf", "project": "lab"}}]
    assert one["authorization"] == {"type": "Bearer", "credentials_file": "/tmp/airpods-keys/llamacpp"}
    assert "authorization" not in jobs["llamacpp-llamacpp-2"]  # api_key = "": nothing to send
    assert jobs["llamacpp-chat-b"]["params"] == {"model": ["b"], "autoload": ["false"]}
    assert jobs["llamacpp-chat-b"]["static_configs"][0]["labels"]["model"] == "b"
    assert jobs["gateway-gateway"]["static_configs"][0]["targets"] == ["gateway:9180"]
    keys = {k: v for k, v in spec["env"].items() if k.startswith("AIRPODS_SCRAPE_KEY_")}
    assert set(keys) == {"AIRPODS_SCRAPE_KEY_LLAMACPP", "AIRPODS_SCRAPE_KEY_CHAT"}
    assert set(keys.values()) == {"********"}  # masked in render
    shown = cli("--config", stack(write_config, extra=PROM), "config", "render", "prometheus", "--json",
                 "--show-secrets")
    real = json.loads(shown.out)["env"]["AIRPODS_SCRAPE_KEY_LLAMACPP"]
    assert len(real) > 16 and real not in text and real not in json.dumps(spec)
    assert spec["entrypoint"][:2] == ["/bin/sh", "-c"] and '"$AIRPODS_SCRAPE_KEY_LLAMACPP"' in spec["entrypoint"][2]
    assert spec["entrypoint"][2].startswith("umask 077") and spec["command"][0].startswith("--config.file=")


def test_start_writes_the_configuration_and_the_gateway_exposes_caddy_metrics(rt, cli, write_config,
                                                                             isolated):
    path = stack(write_config, extra=PROM)
    rt.images |= {"docker.io/prom/prometheus:v2.53.3"}
    assert cli("--config", path, "start", "prometheus", "--no-wait").code == 0, cli("--config", path, "start",
                                                                                  "prometheus").text
    written = isolated / "data" / "airpods" / "prometheus" / "lab" / "etc" / "prometheus.yml"
    assert written.stat().st_mode & 0o777 == 0o644 and "llamacpp:8080" in written.read_text()
    gw = json.loads(cli("--config", path, "config", "render", "gateway", "--json").out)
    assert "http://:9180 {\n\tmetrics /metrics\n}" in gw["gateway"]["caddyfile"]


def test_its_port_asks_for_a_generated_password_that_only_keys_prometheus_shows(rt, cli, write_config,
                                                                             isolated):
    import bcrypt

    path = stack(write_config, extra=PROM)
    assert cli("--config", path, "keys", "prometheus").code == 2  # none yet: made at the first start
    rt.images |= {"docker.io/prom/prometheus:v2.53.3"}
    assert cli("--config", path, "start", "prometheus", "--no-wait").code == 0
    secret = isolated / "data" / "airpods" / "secrets" / "prometheus-web-password"
    password = secret.read_text().strip()
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and len(password) >= 32
    web = (isolated / "data" / "airpods" / "prometheus" / "lab" / "etc" / "web.yml").read_text()
    hashed = yaml.safe_load(web)["basic_auth_users"]["airpods"]
    assert bcrypt.checkpw(password.encode(), hashed.encode()) and password not in web
    spec = render(cli, path)
    assert "--web.config.file=/etc/airpods-prometheus/web.yml" in spec["command"]
    assert password not in json.dumps(spec) and "http_auth" not in spec
    assert dict(spec["config_files"].items())[str(isolated / "data" / "airpods" / "prometheus" / "lab" / "etc"
                                                  / "web.yml")] == web  # the same file at every resolve
    shown = cli("--config", path, "keys", "prometheus")
    assert shown.code == 0 and shown.out == password + "\n"
    again = cli("--config", path, "start", "prometheus", "--no-wait")
    assert "recreat" not in again.err  # a stable hash: a second start changes nothing


def test_its_check_takes_the_request_for_a_password_as_an_answer(tmp_path):
    import shutil
    import subprocess

    from airpods.plan.health import CheckFacts, script
    from tests.helpers import http_server

    busybox = shutil.which("busybox")
    assert busybox, "busybox is needed (its wget is the upstream image's)"
    (tmp_path / "wget").symlink_to(busybox)
    check = script(CheckFacts("prometheus", 9090))
    for status, healthy in ((401, True), (200, True), (500, False)):
        with http_server(lambda *a, s=status: (s, "text/plain", b"x")) as server:
            done = subprocess.run(["sh", "-c", check.replace("127.0.0.1:9090", f"127.0.0.1:{server.port}")],
                                  env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, text=True,
                                  timeout=30, check=False)
        assert (done.returncode == 0) == healthy, (status, done.stdout, done.stderr)
    assert "password" not in check.lower().replace("asks for a password", "")


def test_kube_export_carries_prometheus_and_annotates_the_llama_pods(rt, cli, write_config):
    path = stack(write_config, extra=PROM)
    result = cli("--config", path, "export", "kube", "prometheus", "llamacpp")
    assert result.code == 0, result.text
    docs = list(yaml.safe_load_all(result.out))
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "prometheus-config")
    assert "llamacpp:8080" in config["data"]["prometheus.yml"]
    deploy = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    notes = deploy["llamacpp"]["spec"]["template"]["metadata"]["annotations"]
    assert notes == {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"}
    env = deploy["prometheus"]["spec"]["template"]["spec"]["containers"][0]["env"]
    key = next(e for e in env if e["name"] == "AIRPODS_SCRAPE_KEY_LLAMACPP")
    assert "secretKeyRef" in key["valueFrom"]  # the key is in the Secret alone


def test_quadlet_export_carries_prometheus_with_its_keys_in_podmans_secret_store(rt, cli, write_config,
                                                                               tmp_path):
    path = stack(write_config, extra=PROM)
    out = tmp_path / "units"
    result = cli("--config", path, "export", "quadlet", "prometheus", "-o", str(out))
    assert result.code == 0, result.text
    unit = next(p for p in out.iterdir() if p.name.endswith("prometheus.container")).read_text()
    assert "Secret=" in unit and "type=env,target=AIRPODS_SCRAPE_KEY_LLAMACPP" in unit
    assert "--entrypoint=" in unit and ":/prometheus" in unit
    assert "/etc/airpods-prometheus:ro" in unit

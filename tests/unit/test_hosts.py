"""Hosts behind one door, against the in-memory runtime: [hosts] in the config (refusals that name
the key), the hub's HAProxy configuration (one relay per member, each host's TLS checked against
its own CA, the keys only in env), the gateway's /v1 through the hub, the routes from what each
member lists (the union, one backend per set of members), `hosts add/list/rm` (a refused CA saves
nothing), and a start that refreshes the routes and has the running hub read them again."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from airpods.hosts.probe import Reading
from airpods.plan.hub import Member
from airpods.plan.hub_routes import routes

HAPROXY = "docker.io/library/haproxy:2.6"


@pytest.fixture(scope="module")
def CA(tmp_path_factory) -> str:  # noqa: N802 - a constant of the module, made once
    """A real self-signed CA certificate (openssl), as `airpods keys ca` writes one."""
    import subprocess

    where = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(where / "key.pem"), "-out", str(where / "ca.pem"), "-days", "30",
                    "-subj", "/CN=airpods test CA"], check=True, capture_output=True)
    return (where / "ca.pem").read_text()


def hub_config(write_config, hosts: str = "") -> str:
    return write_config(f"""
[runtime]
project = "lab"
[services.open-webui]
enabled = false
[services.gateway]
enabled = true
[services.hub]
enabled = true
{hosts}""")


HOSTS = """
[hosts.box-a]
url = "https://192.0.2.10:8443"
[hosts.gpu-box]
url = "https://gpu-box.lan:9443/"
"""


def trust(isolated: Path, ca: str, *names: str) -> dict[str, str]:
    """Each host's CA and key, stored as `hosts add` stores them."""
    from airpods.hosts import trust as t
    from airpods.secrets import SecretStore

    keys = {}
    for name in names:
        keys[name] = f"apk-{name}-secret-key-0123456789"
        t.store(isolated / "data" / "airpods" / "hub" / "lab", SecretStore(isolated / "data" / "airpods" / "secrets"),
                name, ca, keys[name])
    return keys


def rendered(cli, path: str, service: str, *extra: str) -> dict:
    result = cli("--config", path, "config", "render", service, "--json", *extra)
    assert result.code == 0, result.text
    return json.loads(result.out)


@pytest.mark.parametrize(("table", "says"), [
    ('[hosts.a]\nurl = "http://192.0.2.1:8443"\n', "hosts.a.url"),
    ('[hosts.a]\nurl = "https://192.0.2.1:8443/v1"\n', "no path"),
    ('[hosts.a]\nurl = "https://192.0.2.1:99999"\n', "1 to 65535"),
    ('[hosts.a]\nurl = "https://x;y:8443"\n', "neither an IP address nor a DNS name"),
    ('[hosts.a]\nurl = "https://box\\nssl verify none:8443"\n', "control character"),
    ('[hosts.A_b]\nurl = "https://192.0.2.1:8443"\n', "host name 'A_b'"),
    ('[hosts.a]\nurl = "https://192.0.2.1:8443"\nca = "x.pem"\n', "hosts.a.ca"),
])
def test_a_wrong_hosts_table_is_refused_naming_its_key(rt, cli, write_config, table, says):
    result = cli("--config", hub_config(write_config, table), "config", "validate")
    assert result.code == 2 and says in result.err and "Traceback" not in result.text, result.text


def test_hosts_need_the_gateway_and_the_hub(rt, cli, write_config):
    path = write_config('[services.gateway]\nenabled = false\n[hosts.a]\nurl = "https://192.0.2.1:8443"\n')
    result = cli("--config", path, "config", "validate")
    assert result.code == 2 and "[services.gateway] enabled = true and [services.hub] enabled = true" in result.err


def test_a_host_without_its_key_is_refused_before_anything_is_made(rt, cli, write_config):
    path = hub_config(write_config, HOSTS)
    result = cli("--config", path, "start")
    assert result.code == 2 and "hosts.box-a: no key for it is stored" in result.err, result.text
    assert rt.containers == {} and rt.pods == {}


def test_the_hub_checks_each_host_against_its_own_ca_and_keeps_keys_in_env(rt, cli, write_config, isolated, CA):
    keys = trust(isolated, CA, "box-a", "gpu-box")
    path = hub_config(write_config, HOSTS)
    hub = rendered(cli, path, "hub")
    cfg = hub["config_files"][str(isolated / "data/airpods/hub/lab/etc/hub.cfg")]
    assert "ca-file /etc/airpods-hub/hosts/box-a.pem" in cfg and "ca-file /etc/airpods-hub/hosts/gpu-box.pem" in cfg
    remote = [line for line in cfg.splitlines() if line.strip().startswith("server host-")]
    assert all("ssl verify required" in line for line in remote) and len(remote) == 2
    assert "sni str(gpu-box.lan) verifyhost gpu-box.lan" in remote[1] and "verifyhost" not in remote[0]
    assert 'http-request set-header Authorization "Bearer ${AIRPODS_HOST_KEY_BOX_A}"' in cfg
    assert "json_query('$.model')" in cfg and "balance" not in cfg  # sets are routes.cfg's
    assert hub["ports"] == [] and hub["env"]["AIRPODS_HOST_KEY_GPU_BOX"] == "********"
    shown = rendered(cli, path, "hub", "--show-secrets")
    assert shown["env"]["AIRPODS_HOST_KEY_BOX_A"] == keys["box-a"]
    assert all(k not in json.dumps(hub) for k in keys.values())
    assert hub["depends_on"] == ["llamacpp"] and "local-llamacpp" in cfg
    gateway = rendered(cli, path, "gateway")
    assert gateway["gateway"]["routes"]["/v1"] == "hub" and gateway["depends_on"][-1] == "hub"
    block = gateway["gateway"]["caddyfile"].split("handle /v1/* {")[1].split("\n\t}")[0]
    assert "reverse_proxy hub:8400" in block and "header_up -Authorization" in block  # a person's key stays
    ca = isolated / "data/airpods/hub/lab/etc/hosts/box-a.pem"
    key_file = isolated / "data/airpods/secrets/host-box-a-key"
    assert stat.S_IMODE(ca.stat().st_mode) == 0o644 and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_open_webui_with_a_hub_is_wired_to_the_hub_alone(rt, cli, write_config, isolated, CA):
    """The hub's /v1 lists every member's models (this host's and every host's) and routes each
    chat by its model, so Open WebUI gets it in place of each llama.cpp service."""
    trust(isolated, CA, "box-a", "gpu-box")
    path = hub_config(write_config, HOSTS).replace("[services.open-webui]\nenabled = false",
                                                   "[services.open-webui]\nenabled = true")
    webui = rendered(cli, path, "open-webui")
    assert webui["env"]["OPENAI_API_BASE_URLS"] == "http://hub:8400/v1", webui["env"]
    shown = rendered(cli, path, "open-webui", "--show-secrets")["env"]
    assert shown["OPENAI_API_KEYS"] == "none" and webui["wired_to"] == ["hub"]  # the hub sets each member's key
    assert "hub" in webui["depends_on"]
    alone = write_config('[runtime]\nproject = "lab"\n')  # no hub: each llama.cpp service itself
    assert rendered(cli, alone, "open-webui")["env"]["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1"


def test_routes_are_the_union_with_one_backend_per_set_of_members():
    ms = [Member("local-llamacpp", "llamacpp (this host)", "", None, relay=19000),
          Member("host-a", "host a", "", "K", ca="x", relay=19001),
          Member("host-b", "host b", "", "K", ca="x", relay=19002)]
    r = routes(ms, {"local-llamacpp": ["x"], "host-a": ["x", "y", "bad id"], "host-b": ["y", "z"]})
    assert r.served == {"x": ("local-llamacpp", "host-a"), "y": ("host-a", "host-b"), "z": ("host-b",)}
    assert r.map == "x serves-1\ny serves-2\nz serves-3\n" and r.skipped == ("bad id",)
    assert [m["id"] for m in json.loads(r.listing)["data"]] == ["x", "y", "z"]
    block = r.config.split("backend serves-2")[1].split("\n\n")[0]
    assert "balance leastconn" in block and "server host-a 127.0.0.1:19001 track host-a/host-a" in block
    assert "tried: host a, host b" in block and "nbsrv() eq 0" in block


def test_hosts_add_saves_nothing_when_the_host_refuses(rt, cli, write_config, isolated, tmp_path, monkeypatch,
                                                       CA):
    path = write_config("[runtime]\nproject = \"lab\"\n")
    before = Path(path).read_text()
    ca = tmp_path / "box-ca.pem"
    ca.write_text(CA)
    refused = Reading("https://192.0.2.10:8443", False, error="its certificate is not trusted: x", refused=True)
    monkeypatch.setattr("airpods.hosts.probe.look", lambda *a, **k: refused)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("apk-given-key\n"))
    result = cli("--config", path, "hosts", "add", "box-a", "https://192.0.2.10:8443", "--ca", str(ca))
    assert result.code == 2 and "not trusted" in result.err and "nothing was saved" in result.err
    assert Path(path).read_text() == before and not (isolated / "data/airpods/secrets/host-box-a-key").exists()
    not_pem = tmp_path / "key.pem"
    not_pem.write_text("hello")
    bad = cli("--config", path, "hosts", "add", "box-a", "https://192.0.2.10:8443", "--ca", str(not_pem))
    assert bad.code == 2 and "holds no PEM certificate" in bad.err


def test_hosts_add_list_rm(rt, cli, write_config, isolated, tmp_path, monkeypatch, CA):
    import io

    path = write_config("[runtime]\nproject = \"lab\"\n")
    ca = tmp_path / "box-ca.pem"
    ca.write_text(CA)
    seen = []

    def look(url, ca_file, key, timeout=5.0):
        seen.append((url, Path(ca_file).read_text(), key))
        return Reading(url, True, 3.2, ("x", "y"), 1_900_000_000.0)

    monkeypatch.setattr("airpods.hosts.probe.look", look)
    monkeypatch.setattr("sys.stdin", io.StringIO("apk-given-key\n"))
    added = cli("--config", path, "hosts", "add", "box-a", "https://192.0.2.10:8443", "--ca", str(ca))
    assert added.code == 0 and "serves x, y" in added.err, added.text
    text = Path(path).read_text()
    assert "[hosts.box-a]" in text and "apk-given-key" not in text
    assert "[services.gateway]\nenabled = true" in text and "[services.hub]\nenabled = true" in text
    assert seen == [("https://192.0.2.10:8443", CA, "apk-given-key")]
    [row] = json.loads(cli("--config", path, "hosts", "list", "--json").out)
    assert row == {"name": "box-a", "url": "https://192.0.2.10:8443", "reachable": True, "latency_ms": 3.2,
                   "models": ["x", "y"], "tls_expires": "2030-03-17T17:46:40Z", "error": None}
    assert rendered(cli, path, "hub")["command"][0] == "haproxy"  # the hub is in the stack now
    assert cli("--config", path, "hosts", "rm", "box-a").code == 0
    assert "hosts" not in Path(path).read_text() and not (isolated / "data/airpods/secrets/host-box-a-key").exists()
    again = cli("--config", path, "hosts", "rm", "box-a")
    assert again.code == 2 and "no host 'box-a'" in again.err


def test_a_start_refreshes_the_routes_and_reloads_the_running_hub(rt, cli, write_config, isolated, monkeypatch, CA):
    trust(isolated, CA, "box-a")
    rt.images |= {HAPROXY}
    path = hub_config(write_config, '[hosts.box-a]\nurl = "https://192.0.2.10:8443"\n')
    monkeypatch.setattr("airpods.hosts.probe.look",
                        lambda url, ca, key, timeout=5.0: Reading(url, True, 1.0, ("big", "llama.cpp")))
    monkeypatch.setattr("airpods.hosts.probe.look_plain",
                        lambda base, key, timeout=5.0: Reading(base, True, 1.0, ("SmolLM2-135M-Instruct.Q4_1",)))
    started = cli("--config", path, "start", "--no-wait")  # nothing answers the fake's health URLs
    assert started.code == 0, started.text
    assert "3 models routed across 2 of 2 members" in started.err
    assert ("lab-hub-0", "SIGUSR2") in rt.signals
    etc = isolated / "data/airpods/hub/lab/etc"
    assert (etc / "models.map").read_text() == ("SmolLM2-135M-Instruct.Q4_1 serves-1\nbig serves-2\n"
                                                "llama.cpp serves-2\n")
    listed = json.loads((etc / "models.json").read_text())
    assert [m["hosts"] for m in listed["data"]] == [["llamacpp (this host)"], ["host box-a"], ["host box-a"]]
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "status", "--json").out)}
    assert rows["box-a"]["kind"] == "host" and rows["box-a"]["state"] == "reachable"
    assert rows["box-a"]["models"] == ["big", "llama.cpp"] and rows["hub"]["state"] == "running"
    again = cli("--config", path, "hosts", "refresh")
    assert again.code == 0 and "big: box-a" in again.err and rt.signals.count(("lab-hub-0", "SIGUSR2")) == 2

    # The watcher's refresh, every minute: the hub is told only when the routes changed.
    from airpods.cli.application import Application
    from airpods.cli.commands.watch import _hub_refresh

    said: list[str] = []
    every, what, job = _hub_refresh(Application(config_path=path), said.append)
    assert every == 60.0 and what == "a refresh of the hub's routes"
    job()
    assert rt.signals.count(("lab-hub-0", "SIGUSR2")) == 2 and said == []  # nothing changed: no reload
    monkeypatch.setattr("airpods.hosts.probe.look",
                        lambda url, ca, key, timeout=5.0: Reading(url, True, 1.0, ("big", "llama.cpp", "new")))
    job()
    assert rt.signals.count(("lab-hub-0", "SIGUSR2")) == 3 and "4 models routed" in said[0], said
    assert "new serves-2" in (etc / "models.map").read_text()


def test_top_shows_each_host_of_the_hub_from_the_hubs_own_log(rt, cli, write_config, isolated, monkeypatch, CA):
    """HAProxy's log lines (the format plan/hub.py gives it): requests per host, the minute's
    errors and median, and a host the checks took out is down with HAProxy's reason."""
    import time

    from airpods.plan.hub import LOG_FORMAT

    trust(isolated, CA, "box-a", "gpu-box")
    rt.images |= {HAPROXY}
    path = hub_config(write_config, HOSTS)
    monkeypatch.setattr("airpods.hosts.probe.look", lambda url, ca, key, timeout=5.0: Reading(url, True, 1.0, ("big",)))
    monkeypatch.setattr("airpods.hosts.probe.look_plain", lambda base, key, timeout=5.0: Reading(base, True, 1.0, ()))
    assert cli("--config", path, "start", "--no-wait").code == 0
    assert LOG_FORMAT.startswith("airpods-hub %Ts.%ms %Tt %b %s %ST %B %ts")  # what the lines below mimic
    now = time.time()
    rt.log_lines["lab-hub-0"] = [
        "[NOTICE]   (1) : New worker (8) forked",
        f"airpods-hub {now - 30:.3f} 400 serves-2 host-box-a 200 5120 --",
        f"airpods-hub {now - 20:.3f} 200 serves-2 host-box-a 200 2048 --",
        f"airpods-hub {now - 10:.3f} 900 serves-2 host-box-a 200 300 SD",  # cut by the host: an error
        f"airpods-hub {now + 1:.3f} 100 serves-2 host-gpu-box 200 800 --",  # ends in top's interval
        f"airpods-hub {now - 0.2:.3f} 0 hub <NOSRV> 200 90 LR",  # the listing: the hub's own answer
        f"airpods-hub {now - 300:.3f} 100 serves-2 host-gpu-box 200 800 --",  # older than a minute
        "Server serves-2/host-box-a is DOWN, reason: Layer4 connection problem, info: \"Connection refused\"",
        "[WARNING]  (8) : Server host-box-a/host-box-a is DOWN, reason: Layer4 connection problem, info: x",
        "Server host-gpu-box/host-gpu-box is DOWN, reason: Layer7 wrong status, code: 401",
        "Server host-gpu-box/host-gpu-box is UP, reason: Layer7 check passed, code: 200, check duration: 3ms.",
    ]
    result = cli("--config", path, "top", "--json", "--interval", "1")
    assert result.code == 0, result.text
    rows = json.loads(result.out)
    names = [r["service"] for r in rows]
    assert names.index("box-a") == names.index("hub") + 1 and names.index("gpu-box") == names.index("hub") + 2
    got = {r["service"]: r for r in rows}
    a, g = got["box-a"], got["gpu-box"]
    assert a["kind"] == "host" and a["state"] == "down" and "Layer4 connection problem" in a["why"]
    assert (a["requests_last_minute"], a["errors_last_minute"], a["median_ms"]) == (3, 1, 400)
    assert g["state"] == "up" and g["why"] is None and g["requests_last_minute"] == 1 and g["requests_per_s"] == 1.0
    assert got["hub"]["requests_last_minute"] == 4
    table = cli("--config", path, "top", "--once", "--interval", "1")
    assert table.code == 0 and "host box-a" in table.out and "the hub's checks fail" in table.out, table.text


def test_the_hub_goes_to_kubernetes_with_its_routes_its_hosts_cas_and_keys_in_secrets(cli, write_config, isolated,
                                                                                        CA):
    import kubernetes_validate
    import yaml

    keys = trust(isolated, CA, "box-a", "gpu-box")
    path = hub_config(write_config, HOSTS)
    etc = isolated / "data/airpods/hub/lab/etc"
    (etc / "models.map").write_text("big serves-1\n")  # a refresh's routes, as this machine has them
    (etc / "routes.cfg").write_text("backend serves-1\n\tbalance leastconn\n")
    (etc / "models.json").write_text('{"object": "list", "data": [{"id": "big"}]}')
    result = cli("--config", path, "export", "kube")
    assert result.code == 0, result.text
    docs = [d for d in yaml.safe_load_all(result.out) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = by[("ConfigMap", "hub-config")]["data"]
    assert config["models.map"] == "big serves-1\n" and "balance leastconn" in config["routes.cfg"]
    assert "resolvers podman resolve-prefer" not in config["hub.cfg"] and " init-addr libc,none" in config["hub.cfg"]
    assert "ca-file /etc/airpods-hub/hosts/gpu-box.pem" in config["hub.cfg"]
    assert by[("Secret", "hub-hosts")]["stringData"] == {"box-a.pem": CA, "gpu-box.pem": CA}
    assert by[("Service", "hub")]["spec"]["ports"][0]["port"] == 8400  # the gateway's upstream, in the cluster
    import re

    services = {name for kind, name in by if kind == "Service"}
    caddyfile = by[("ConfigMap", "gateway-caddyfile")]["data"]["Caddyfile"]
    upstreams = re.findall(r"reverse_proxy ([a-z0-9.-]+):\d+", caddyfile)
    local = re.findall(r"server local-\S+ ([a-z0-9.-]+):\d+", config["hub.cfg"])
    assert "hub" in upstreams and local == ["llamacpp"] and set(upstreams + local) <= services, (upstreams, services)
    pod = by[("Deployment", "hub")]["spec"]["template"]["spec"]
    [mount] = pod["containers"][0]["volumeMounts"]
    [volume] = pod["volumes"]
    assert mount["mountPath"] == "/etc/airpods-hub" and mount["readOnly"]
    assert volume["projected"]["sources"][1]["secret"]["items"][1] == {"key": "gpu-box.pem",
                                                                       "path": "hosts/gpu-box.pem"}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "secretKeyRef" in env["AIRPODS_HOST_KEY_BOX_A"]["valueFrom"]
    assert all(k not in result.out for k in keys.values()) and "its routes are those of the last refresh" in result.err
    shown = cli("--config", path, "export", "kube", "--show-secrets").out
    secret = next(d for d in yaml.safe_load_all(shown) if d and d["metadata"]["name"] == "airpods-secrets")
    assert keys["box-a"] in secret["stringData"].values()  # with --show-secrets: in the Secret, nowhere else
    assert shown.count(keys["box-a"]) == 1
    podman_target = cli("--config", path, "export", "kube", "hub", "--target", "podman")
    assert podman_target.code == 2 and "AIRPODS_HOST_KEY_BOX_A" in podman_target.err, podman_target.text


def test_the_hub_goes_to_quadlet_with_its_routes(rt, cli, write_config, isolated, CA):
    keys = trust(isolated, CA, "box-a")
    path = hub_config(write_config, '[hosts.box-a]\nurl = "https://192.0.2.10:8443"\n')
    etc = isolated / "data/airpods/hub/lab/etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "models.map").write_text("big serves-1\n")  # a refresh's routes: kept by the export
    units = isolated / "units"
    done = cli("--config", path, "export", "quadlet", "-o", str(units))
    assert done.code == 0, done.text
    hub = (units / "lab-hub-0.container").read_text() if (units / "lab-hub-0.container").exists() else \
        next(p.read_text() for p in units.glob("*.container") if "haproxy" in p.read_text())
    assert f"Volume={etc}:/etc/airpods-hub:ro" in hub and "Secret=" in hub and "AIRPODS_HOST_KEY_BOX_A" in hub
    assert keys["box-a"] not in "".join(p.read_text() for p in units.iterdir())
    assert (etc / "models.map").read_text() == "big serves-1\n" and (etc / "routes.cfg").is_file()
    assert "ca-file /etc/airpods-hub/hosts/box-a.pem" in (etc / "hub.cfg").read_text()

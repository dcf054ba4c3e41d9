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


def test_the_hub_goes_to_quadlet_with_its_routes_and_is_refused_for_kubernetes(rt, cli, write_config, isolated, CA):
    keys = trust(isolated, CA, "box-a")
    path = hub_config(write_config, '[hosts.box-a]\nurl = "https://192.0.2.10:8443"\n')
    kube = cli("--config", path, "export", "kube")
    assert kube.code == 2 and "cannot be exported to Kubernetes yet" in kube.err and kube.out == "", kube.text
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

"""The HTTPS gateway through the CLI against the in-memory runtime: its routes and Caddyfile, the
person keys (add, list, revoke, never shown again), the refusals (listening beyond this machine
with no key, Open WebUI's login switched off, a service name on a reserved path), what it mounts,
status and doctor, the kube export (keys only in the Secret) and the access log."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from tests.podman_env import free_port
from tests.unit.builders import CA, LLAMA, gateway_dir, stack


def render(cli, path: str, name: str = "gateway") -> dict:
    result = cli("--config", path, "config", "render", name, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_routes_and_caddyfile_keep_every_key_out_of_the_text(rt, cli, write_config, isolated):
    path = stack(write_config, webui=True)
    gw = render(cli, path)
    assert gw["gateway"]["routes"] == {"/v1": "llamacpp", "/llamacpp/v1": "llamacpp",
                                       "/llamacpp-2/v1": "llamacpp-2", "/": "open-webui"}
    assert gw["url"].startswith("https://127.0.0.1:") and gw["health"]["url"].endswith("/healthz")
    assert gw["depends_on"] == ["llamacpp", "llamacpp-2", "open-webui"]
    shown = json.loads(cli("--config", path, "config", "render", "gateway", "--json", "--show-secrets").out)
    backend = (isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key").read_text().strip()
    assert shown["env"]["AIRPODS_BACKEND_KEY_LLAMACPP"] == backend
    gw = render(cli, path)
    caddyfile = gw["gateway"]["caddyfile"]
    assert backend not in caddyfile and backend not in json.dumps(gw)
    assert gw["env"]["AIRPODS_BACKEND_KEY_LLAMACPP"] == "********"
    assert 'header_up Authorization "Bearer {env.AIRPODS_BACKEND_KEY_LLAMACPP}"' in caddyfile
    # llamacpp-2 has no key: a person's key is stripped, never passed on
    block = caddyfile.split("handle /llamacpp-2/v1/* {")[1].split("\n\t}")[0]
    assert "header_up -Authorization" in block and "uri strip_prefix /llamacpp-2" in block
    assert "flush_interval -1" in block
    assert "reverse_proxy open-webui:8080" in caddyfile and "tls internal" in caddyfile
    assert "import /etc/airpods-gateway/keys.caddy" in caddyfile
    assert gw["command"][:2] == ["caddy", "run"] and "--watch" in gw["command"]
    assert {"source": str(gateway_dir(isolated) / "etc"), "target": "/etc/airpods-gateway",
            "mode": "ro"} in gw["volumes"]
    webui = render(cli, path, "open-webui")
    assert webui["env"]["WEBUI_AUTH"] == "true"  # its login stays on behind the gateway


def test_the_default_route_goes_to_a_router_or_to_the_named_service(rt, cli, write_config):
    router = """
[services.chat]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
mode = "router"
ports = [{ container = 8080 }]
models = { a = { file = "SmolLM2-135M-Instruct.Q4_1.gguf" } }
"""
    assert render(cli, stack(write_config, extra=router))["gateway"]["routes"]["/v1"] == "chat"
    named = render(cli, stack(write_config, extra=router, gateway='default = "llamacpp-2"'))
    assert named["gateway"]["routes"]["/v1"] == "llamacpp-2"
    bad = cli("--config", stack(write_config, gateway='default = "open-webui"'), "config", "validate")
    assert bad.code == 2 and "services.gateway.default" in bad.err and "llamacpp-2" in bad.err


def test_open_webui_login_off_or_a_reserved_name_is_a_config_error(rt, cli, write_config):
    path = stack(write_config, webui=True, extra='[services.open-webui.env]\nWEBUI_AUTH = "false"\n')
    result = cli("--config", path, "start", "--no-wait")
    assert result.code == 2 and "services.open-webui.env.WEBUI_AUTH" in result.err, result.text
    assert "Traceback" not in result.text and not rt.containers
    api = stack(write_config, extra=f'[services.api]\nkind = "llamacpp"\nimage = "{LLAMA}"\n'
                                    'default_model = "m.gguf"\n')
    result = cli("--config", api, "config", "validate")
    assert result.code == 2 and "services.api" in result.err and "rename" in result.err


def test_a_gateway_without_its_port_is_a_config_error(rt, cli, write_config):
    path = write_config("[services.open-webui]\nenabled = false\n[services.gateway]\nenabled = true\nports = []\n")
    result = cli("--config", path, "start", "gateway", "--no-wait")
    assert result.code == 2 and "services.gateway" in result.err and "one HTTPS port" in result.err, result.text
    assert "Traceback" not in result.text and not rt.containers


def test_keys_add_list_revoke(rt, cli, write_config, isolated):
    path = stack(write_config)
    added = cli("--config", path, "keys", "add", "alice@lab")
    assert added.code == 0, added.text
    key = added.out.strip()
    assert key.startswith("apk-") and len(key) > 40 and key not in added.err
    folder = gateway_dir(isolated)
    for f in (folder / "keys.json", folder / "etc" / "keys.caddy"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert f'"Bearer {key}" "alice@lab"' in (folder / "etc" / "keys.caddy").read_text()

    listed = cli("--config", path, "keys", "list")
    assert listed.code == 0 and "alice@lab" in listed.out and "never" in listed.out and key not in listed.text
    again = cli("--config", path, "keys", "add", "alice@lab")
    assert again.code == 2 and "already" in again.err and "revoke" in again.err
    assert cli("--config", path, "keys", "add", "../etc/passwd").code == 2

    caddyfile = folder / "etc" / "Caddyfile"
    caddyfile.write_text("# a running gateway's config\n")
    old = time.time() - 60
    os.utime(caddyfile, (old, old))
    revoked = cli("--config", path, "keys", "revoke", "alice@lab")
    assert revoked.code == 0, revoked.text
    assert key not in (folder / "etc" / "keys.caddy").read_text() and key not in (folder / "keys.json").read_text()
    assert caddyfile.stat().st_mtime > old + 30  # touched: Caddy's --watch reloads it
    assert json.loads(cli("--config", path, "keys", "list", "--json").out) == []
    unknown = cli("--config", path, "keys", "revoke", "bob")
    assert unknown.code == 2 and "no key for 'bob'" in unknown.err


def test_keys_without_a_gateway_in_the_config(rt, cli, write_config):
    path = write_config("[services.open-webui]\nenabled = false\n[services.gateway]\nkind = \"generic\"\n")
    result = cli("--config", path, "keys", "add", "alice")
    assert result.code == 2 and "no gateway" in result.err and "Traceback" not in result.err


def test_start_mounts_the_folder_and_no_person_key_reaches_the_container(rt, cli, write_config, isolated):
    path = stack(write_config)
    key = cli("--config", path, "keys", "add", "alice").out.strip()
    started = cli("--config", path, "start", "gateway", "--no-wait")
    assert started.code == 0, started.text
    assert {"llamacpp", "llamacpp-2"} <= {s.name for s in rt.specs.values()}  # its backends start first
    spec = rt.specs["lab-gateway-0"]
    caddyfile = gateway_dir(isolated) / "etc" / "Caddyfile"
    assert caddyfile.read_text() == spec.gateway_config and stat.S_IMODE(caddyfile.stat().st_mode) == 0o600
    seen = json.dumps([spec.env, list(spec.command), [v.source for v in spec.volumes], spec.labels])
    assert key not in seen
    backend = rt.specs["lab-llamacpp-0"].env["LLAMA_API_KEY"]
    assert spec.env["AIRPODS_BACKEND_KEY_LLAMACPP"] == backend and "AIRPODS_BACKEND_KEY_LLAMACPP_2" not in spec.env


def test_listening_beyond_this_machine_needs_a_key(rt, cli, write_config):
    path = stack(write_config, gateway='listen = "0.0.0.0"')
    assert render(cli, path)["ports"][0]["host_ip"] == "0.0.0.0"
    refused = cli("--config", path, "start", "gateway", "--no-wait")
    assert refused.code == 2 and "no key defined" in refused.err and "airpods keys add" in refused.err
    assert not rt.containers and not rt.pods  # nothing created
    doctor = cli("--config", path, "doctor")
    assert "listens on 0.0.0.0" in doctor.err
    assert cli("--config", path, "keys", "add", "alice").code == 0
    started = cli("--config", path, "start", "gateway", "--no-wait")
    assert started.code == 0 and "reachable from other machines" in started.err, started.text


def test_the_certificate_names_and_the_users_own_certificate(rt, cli, write_config, isolated):
    gw = render(cli, stack(write_config, gateway='listen = "192.168.7.2"\nhostnames = ["gpu.lab", "10.0.0.9"]'))
    assert gw["gateway"]["names"] == ["localhost", "127.0.0.1", "192.168.7.2", "gpu.lab", "10.0.0.9"]
    assert "default_sni 192.168.7.2" in gw["gateway"]["caddyfile"]
    half = cli("--config", stack(write_config, gateway='tls_cert = "/x/cert.pem"'), "config", "validate")
    assert half.code == 2 and "tls_key" in half.err
    (isolated / "cert.pem").write_text("cert")
    own = stack(write_config, gateway=f'tls_cert = "{isolated}/cert.pem"\ntls_key = "{isolated}/nokey.pem"')
    assert "tls /etc/airpods-gateway-tls/cert.pem" in render(cli, own)["gateway"]["caddyfile"]
    missing = cli("--config", own, "start", "gateway", "--no-wait")
    assert missing.code == 2 and "tls_key" in missing.err and "nokey.pem" in missing.err and not rt.containers


def test_keys_ca_and_status_show_the_fingerprint(rt, cli, write_config, isolated):
    import base64
    import hashlib

    path = stack(write_config)
    missing = cli("--config", path, "keys", "ca")
    assert missing.code == 2 and "not made its CA yet" in missing.err and "airpods start gateway" in missing.err
    assert cli("--config", path, "start", "gateway", "--no-wait").code == 0
    root = Path(rt.volume_path("airpods_gateway_data")) / "caddy/pki/authorities/local/root.crt"
    root.parent.mkdir(parents=True)
    root.write_text(CA)
    der = base64.b64decode("".join(CA.splitlines()[1:-1]))
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    out = isolated / "ca.pem"
    result = cli("--config", path, "keys", "ca", "-o", str(out))
    assert result.code == 0 and out.read_text() == CA and expected in result.err
    assert cli("--config", path, "keys", "ca").out == CA
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "status", "--json").out)}
    assert rows["gateway"]["ca_fingerprint"] == expected and rows["gateway"]["url"].startswith("https://")
    assert expected in cli("--config", path, "status").err


def test_access_log_names_the_owner_and_feeds_last_use(rt, cli, write_config):
    from airpods.gateway.access import last_use, readable

    path = stack(write_config)
    assert cli("--config", path, "keys", "add", "alice").code == 0
    assert cli("--config", path, "start", "gateway", "--no-wait").code == 0
    entry = {"level": "info", "ts": 1796004011.55, "logger": "http.log.access.log0", "msg": "handled request",
             "request": {"remote_ip": "10.89.0.1", "method": "POST", "uri": "/v1/chat/completions",
                         "headers": {"Authorization": []}}, "user_id": "alice", "duration": 0.25, "status": 200}
    denied = {**entry, "ts": 1796009999.0, "user_id": "", "status": 401}
    rt.log_lines["lab-gateway-0"] = ['{"level":"info","msg":"serving initial configuration"}', json.dumps(entry),
                                 json.dumps(denied)]
    assert last_use(rt.log_lines["lab-gateway-0"]) == {"alice": 1796004011.55}
    assert readable(json.dumps(entry)) == "2026-11-30T02:00:11Z alice 10.89.0.1 POST /v1/chat/completions 200 0.250s"
    logs = cli("--config", path, "logs", "gateway")
    assert "alice 10.89.0.1 POST /v1/chat/completions 200" in logs.out and "- 10.89.0.1 POST" in logs.out
    [row] = json.loads(cli("--config", path, "keys", "list", "--json").out)
    assert row == {"name": "alice", "created": row["created"], "last_used": "2026-11-30T02:00:11Z"}


def test_kube_export_puts_the_keys_in_the_secret_alone(rt, cli, write_config):
    path = stack(write_config)
    key = cli("--config", path, "keys", "add", "alice").out.strip()
    plain = cli("--config", path, "export", "kube", "gateway")
    assert plain.code == 0 and key not in plain.out and "gateway-keys holds no person key" in plain.err
    shown = cli("--config", path, "export", "kube", "gateway", "--show-secrets")
    assert shown.code == 0, shown.text
    import yaml

    docs = list(yaml.safe_load_all(shown.out))
    holding = [d for d in docs if key in json.dumps(d)]
    assert [(d["kind"], d["metadata"]["name"]) for d in holding] == [("Secret", "gateway-keys")]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"]["httpGet"]["scheme"] == "HTTPS"
    projected = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "projected" in v]
    assert projected[0]["projected"]["sources"] == [{"configMap": {"name": "gateway-caddyfile"}},
                                                    {"secret": {"name": "gateway-keys"}}]
    assert any(d["kind"] == "Service" and d["metadata"]["name"] == "gateway" for d in docs)


def test_a_new_llama_service_recreates_the_gateway_with_its_route(rt, cli, write_config):
    path = stack(write_config)
    assert cli("--config", path, "start", "gateway", "--no-wait").code == 0
    first = rt.containers["lab-gateway-0"].labels["io.airpods.config-hash"]
    more = stack(write_config, extra=f'[services.llamacpp-3]\nkind = "llamacpp"\nimage = "{LLAMA}"\n'
                                     'default_model = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
                                     f'ports = [{{ host = {free_port()}, container = 8080 }}]\n')
    assert "/llamacpp-3/v1" in render(cli, more)["gateway"]["routes"]
    assert cli("--config", more, "start", "gateway", "--no-wait").code == 0
    assert rt.containers["lab-gateway-0"].labels["io.airpods.config-hash"] != first


def test_a_fingerprint_is_printed_as_it_is():
    """Rich would turn ":AB:" into an emoji (seen in CI with a real CA's fingerprint)."""
    import io

    from airpods.cli.terminal import Terminal

    err = io.StringIO()
    Terminal(stderr=err).detail("SHA-256 fingerprint: 20:C9:AB:45:D6:FE:66 :ok: :smile:")
    assert "20:C9:AB:45:D6:FE:66 :ok: :smile:" in err.getvalue()


def test_keys_add_refuses_a_name_with_a_line_break(rt, cli, write_config, isolated):
    path = stack(write_config)
    result = cli("--config", path, "keys", "add", "bob\n")
    assert result.code == 2 and "key name" in result.err
    keys_caddy = gateway_dir(isolated) / "etc" / "keys.caddy"
    assert not keys_caddy.exists() or "bob" not in keys_caddy.read_text()


def test_keys_ca_into_a_missing_folder_is_a_clear_error(rt, cli, write_config, isolated):
    from pathlib import Path

    path = stack(write_config)
    assert cli("--config", path, "start", "gateway", "--no-wait").code == 0
    root = Path(rt.volume_path("airpods_gateway_data")) / "caddy/pki/authorities/local/root.crt"
    root.parent.mkdir(parents=True)
    root.write_text(CA)
    result = cli("--config", path, "keys", "ca", "-o", "/missing/dir/ca.pem")
    assert result.code == 2, result.text
    assert "/missing/dir/ca.pem" in result.err and "Traceback" not in result.text


def test_a_key_file_holding_a_list_is_a_clear_error(rt, cli, write_config, isolated):
    path = stack(write_config)
    folder = gateway_dir(isolated)
    folder.mkdir(parents=True)
    (folder / "keys.json").write_text("[1, 2]\n")
    for args in (["keys", "list"], ["keys", "add", "alice"]):
        result = cli("--config", path, *args)
        assert result.code == 2 and "keys.json" in result.err and "Traceback" not in result.text, result.text
    assert (folder / "keys.json").read_text() == "[1, 2]\n"  # nothing written over it

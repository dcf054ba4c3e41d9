"""Open WebUI reachable by others gets its first admin from airpods, and start says how to sign in
without ever showing the password."""

from __future__ import annotations

import json

from tests.unit.builders import stack


def test_open_webui_reachable_by_others_gets_its_admin_from_airpods(rt, cli, write_config, isolated):
    behind = stack(write_config, webui=True)
    env = json.loads(cli("--config", behind, "config", "render", "open-webui", "--json").out)["env"]
    assert env["ENABLE_SIGNUP"] == "false" and env["WEBUI_ADMIN_EMAIL"] == "admin@airpods.local"
    assert env["WEBUI_ADMIN_PASSWORD"] == "********" and env["WEBUI_AUTH"] == "true"
    shown = json.loads(cli("--config", behind, "config", "render", "open-webui", "--json", "--show-secrets").out)
    secret = (isolated / "data" / "airpods" / "secrets" / "open-webui-admin-password")
    assert shown["env"]["WEBUI_ADMIN_PASSWORD"] == secret.read_text().strip()
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    kube = cli("--config", behind, "export", "kube").out
    assert secret.read_text().strip() not in kube

    local = write_config("[services.open-webui]\nenabled = true\n")
    env = json.loads(cli("--config", local, "config", "render", "open-webui", "--json").out)["env"]
    assert "WEBUI_ADMIN_PASSWORD" not in env and "ENABLE_SIGNUP" not in env  # this machine's users only

    wide = write_config('[services.open-webui]\nenabled = true\nports = [{ host = 3000, container = 8080, '
                        'host_ip = "0.0.0.0" }]\n')
    env = json.loads(cli("--config", wide, "config", "render", "open-webui", "--json").out)["env"]
    assert env["ENABLE_SIGNUP"] == "false" and env["WEBUI_ADMIN_PASSWORD"] == "********"


def test_start_says_how_to_sign_in_and_never_shows_the_password(rt, cli, write_config, isolated):
    path = stack(write_config, webui=True)
    assert cli("--config", path, "keys", "add", "alice").code == 0
    result = cli("--config", path, "start", "--no-wait")
    assert result.code == 0, result.text
    secret = isolated / "data" / "airpods" / "secrets" / "open-webui-admin-password"
    assert f"sign in as admin@airpods.local, password in {secret}" in result.err
    assert secret.read_text().strip() not in result.text
    webui = next(s for s in rt.specs.values() if s.name == "open-webui")  # what the container got
    assert webui.env["ENABLE_SIGNUP"] == "false" and webui.env["WEBUI_ADMIN_PASSWORD"] == secret.read_text().strip()

"""The security review (issue 25), items 3, 5, 7 and 8, through the CLI against the fake runtime:
config text cannot add lines to a Quadlet unit, airpods' labels come last, two projects' units live
side by side in one folder (and one never replaces the other's), names with a trailing line break
are refused, and two user mistakes with `keys` are clear messages, not internal errors."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import quadlet_binary
from tests.unit.builders import CA, gateway_dir, stack

INJECT = "x\n[Service]\nExecStartPre=/bin/sh -c 'touch /tmp/pwned'"


def unit_lines(files: dict[str, str]) -> list[str]:
    return [line for text in files.values() for line in text.splitlines()]


def export(cli, path: str, out) -> dict[str, str]:
    result = cli("--config", path, "export", "quadlet", "-o", str(out))
    assert result.code == 0, result.text
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


def test_an_env_value_with_line_breaks_stays_one_escaped_word_in_the_unit(cli, write_config, tmp_path):
    path = write_config(f'[services.llamacpp.env]\nNOTE = {json.dumps(INJECT)}\n'
                        f'[services.llamacpp]\nargs = ["--alias", {json.dumps("a%b$c" + chr(1))}]\n')
    files = export(cli, path, tmp_path / "units")
    lines = unit_lines(files)
    assert not any(line.startswith(("ExecStartPre", "[Service]x")) for line in lines)
    assert sum(line == "[Service]" for line in lines) == sum(n.endswith(".container") for n in files)
    container = next(t for n, t in files.items() if n.endswith("llamacpp.container"))
    assert 'Environment="NOTE=x\\n[Service]\\nExecStartPre=/bin/sh -c \'touch /tmp/pwned\'"' in container
    assert '"a%%b$$c\\x01"' in container
    gen = subprocess.run([quadlet_binary(), "-dryrun"], capture_output=True, text=True, timeout=60, check=False,
                         env={"QUADLET_UNIT_DIRS": str(tmp_path / "units"), "PATH": "/usr/bin:/bin"})
    assert gen.returncode == 0, gen.stderr
    generated = gen.stdout.split("llamacpp.service---", 1)[1].split("\n---", 1)[0]
    assert not any(line.startswith("ExecStartPre") for line in generated.splitlines())
    assert "--env \"NOTE=x\\n[Service]" in generated  # one quoted word, escapes kept for systemd


def test_airpods_labels_come_last_in_units(cli, write_config, tmp_path):
    path = write_config('[runtime]\nproject = "lab"\n[runtime.labels]\nteam = "ml"\n')
    files = export(cli, path, tmp_path / "units")
    container = next(t for n, t in files.items() if n.endswith("llamacpp.container"))
    labels = [line for line in container.splitlines() if line.startswith("Label=")]
    assert labels[0] == 'Label="team=ml"' and labels[-4:-1] == [
        'Label="io.airpods.managed=true"', 'Label="io.airpods.project=lab"', 'Label="io.airpods.service=llamacpp"']
    assert labels[-1].startswith('Label="io.airpods.seal=v1:')  # the seal over them, last of all


def test_two_projects_export_into_one_folder_side_by_side(cli, write_config, tmp_path):
    out = tmp_path / "units"
    alpha = write_config('[runtime]\nproject = "alpha"\n')
    beta = write_config('[runtime]\nproject = "beta"\n')
    export(cli, alpha, out)
    first = {p.name: p.read_text() for p in out.iterdir()}
    export(cli, beta, out)
    after = {p.name: p.read_text() for p in out.iterdir()}
    assert {n: after[n] for n in first} == first  # alpha's units are as alpha wrote them
    assert "alpha-llamacpp.container" in after and "beta-llamacpp.container" in after
    beta_unit = after["beta-llamacpp.container"]
    assert "Pod=beta-llamacpp.pod" in beta_unit and 'Label="io.airpods.project=beta"' in beta_unit
    gen = subprocess.run([quadlet_binary(), "-dryrun"], capture_output=True, text=True, timeout=60, check=False,
                         env={"QUADLET_UNIT_DIRS": str(out), "PATH": "/usr/bin:/bin"})
    assert gen.returncode == 0 and "---alpha-llamacpp.service---" in gen.stdout, gen.stderr
    assert "---beta-llamacpp.service---" in gen.stdout


def test_a_unit_another_project_wrote_is_never_replaced(cli, write_config, tmp_path):
    out = tmp_path / "units"
    alpha = write_config('[runtime]\nproject = "alpha"\n')
    export(cli, alpha, out)
    text = (out / "alpha-llamacpp.container").read_text()
    (out / "llamacpp.container").write_text(text)  # a unit of alpha's under the default project's name
    refused = cli("--config", write_config("[runtime]\nproject = \"default\"\n"), "export", "quadlet", "-o", str(out))
    assert refused.code == 2 and "another project" in refused.err and "project alpha" in refused.err
    assert (out / "llamacpp.container").read_text() == text


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

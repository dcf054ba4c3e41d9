"""What a Quadlet unit may hold: config text cannot add lines to it, airpods' labels come last, two
projects' units live side by side in one folder and one never replaces the other's."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import quadlet_binary

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

"""`airpods export quadlet`: the units from the resolved specs, every secret by reference only,
checked by Podman's real Quadlet generator (Debian 13's, run with -dryrun) and systemd-analyze."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import quadlet_binary
from tests.unit.builders import layouts

ROOT = Path(__file__).resolve().parents[2]


def export(cli, path: str | None, out: Path, *args: str):
    result = cli(*(["--config", path] if path else []), "export", "quadlet", "-o", str(out), *args)
    assert result.code == 0, result.text
    return {p.name: p.read_text() for p in sorted(out.iterdir())}, result


def secret_values(isolated: Path) -> list[str]:
    store = isolated / "data" / "airpods" / "secrets"
    return [p.read_text().strip() for p in store.iterdir() if p.is_file()]


@pytest.mark.parametrize("layout", ["default", "hybrid", "router"])
def test_units_reference_secrets_and_never_hold_them(cli, write_config, isolated, tmp_path, layout):
    files, result = export(cli, layouts(write_config)[layout], tmp_path / "units")
    assert any(n.endswith(".network") for n in files) and any(n.endswith(".pod") for n in files)
    assert any(n.endswith(".volume") for n in files)
    keys = secret_values(isolated)
    assert keys and not any(k in text for k in keys for text in files.values())
    webui = next((t for n, t in files.items() if n.endswith("open-webui.container")), "")
    if webui:  # after its backends, its keys by reference
        assert "llamacpp.service" in webui or "router.service" in webui
        assert "Secret=airpods-" in webui and "type=env,target=WEBUI_SECRET_KEY" in webui
    llama = next(t for n, t in files.items() if n.endswith(".container") and "llama" in t)
    assert "type=env,target=LLAMA_API_KEY" in llama and "Exec=" in llama and "PublishPort" not in llama
    assert "Podman secret(s) are referenced" in result.err


def test_install_writes_units_creates_secrets_and_refuses_foreign_files(cli, write_config, fake, tmp_path, isolated):
    out = tmp_path / "systemd"
    result = cli("export", "quadlet", "--install", "-o", str(out))
    assert result.code == 0, result.text
    assert fake.secrets and set(fake.secrets.values()) <= set(secret_values(isolated)) | {
        v for v in fake.secrets.values() if ";" in v}
    assert "daemon-reload" in result.err and "llamacpp.service" in result.err
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in out.iterdir())
    (out / "airpods.network").write_text("[Network]\n# mine\n")
    refused = cli("export", "quadlet", "--install", "-o", str(out))
    assert refused.code == 2 and "airpods.network" in refused.err and "did not write" in refused.err
    assert (out / "airpods.network").read_text() == "[Network]\n# mine\n"


@pytest.mark.parametrize("layout,rootless", [("default", False), ("hybrid", False), ("router", False),
                                             ("router", True)])
def test_the_real_quadlet_generator_accepts_every_unit(cli, write_config, tmp_path, layout, rootless):
    quadlet = quadlet_binary()
    units = tmp_path / "units"
    files, _ = export(cli, layouts(write_config)[layout], units, *(["--rootless"] if rootless else []))
    gen = subprocess.run([quadlet, "-dryrun", *(["-user"] if rootless else [])], capture_output=True, text=True,
                         env={**os.environ, "QUADLET_UNIT_DIRS": str(units)}, timeout=60, check=False)
    assert gen.returncode == 0, gen.stderr
    noise = [line for line in gen.stderr.splitlines() if line.strip() and "Loading source unit file" not in line]
    assert noise == [], noise  # no warning of any kind
    for name in files:
        stem, kind = name.rsplit(".", 1)
        service = {"container": stem, "pod": f"{stem}-pod", "network": f"{stem}-network",
                   "volume": f"{stem}-volume"}[kind]
        assert f"---{service}.service---" in gen.stdout, f"no unit for {name}"
    starts = [line for line in gen.stdout.splitlines() if line.startswith("ExecStart=") and " run " in line]
    assert starts and all("--secret airpods-" in s for s in starts if "--name llamacpp" in s)
    for start in starts:  # every service carries its health check, restarted by Podman when unhealthy
        assert "--health-cmd" in start and "--health-on-failure restart" in start, start
        assert "--health-retries 3" in start and "--health-interval 30s" in start
    if shutil.which("systemd-analyze"):  # the generated units as systemd reads them
        generated = tmp_path / "generated"
        generated.mkdir()
        _write_units(gen.stdout, generated)
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(map(str, generated.iterdir()))],
                                capture_output=True, text=True, timeout=60, check=False)
        problems = [line for line in verify.stderr.splitlines()
                    if "podman" not in line.lower() and "not executable" not in line and line.strip()]
        assert verify.returncode == 0 or not problems, verify.stderr


def _write_units(dryrun: str, directory: Path) -> None:
    import re

    for name, body in re.findall(r"---(\S+?)---\n(.*?)(?=\n---\S+---|\Z)", dryrun, re.S):
        (directory / name).write_text(body)

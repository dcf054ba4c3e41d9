"""The Quadlet export as a working layout, not only as text: Podman 5's generator (Debian 13's,
-dryrun) turns the units into the commands systemd would run; those commands, adjusted for
Podman 4.3 and run here in the units' dependency order, bring up llama.cpp and Open WebUI, and
Open WebUI lists the llama.cpp model. The keys come from Podman's secret store only."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.builders import call, webui_models
from tests.helpers import quadlet_binary
from tests.podman_env import LLAMA_IMAGE, OPENWEBUI_IMAGE, free_port, image_exists, need, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.openwebui]
# Flags of the generated commands that Podman 4.3 cannot take here: two need a systemd unit around
# them, one is newer than 4.3 (an existing network or volume then reads as "already exists").
ONLY_SYSTEMD = ("--sdnotify=conmon", "--cgroups=split", "--ignore")


def layout(prun, webui_port: int) -> str:
    rid = prun.id
    return prun.header(keep=("llamacpp", "open-webui")) + f"""
[services.llamacpp]
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "qllama-{rid}"
container = "qllama-{rid}-0"
ports = [{{ host = {free_port()}, container = 8080 }}]
[services.llamacpp.command_args]
alias = "quadlet-chat"
ctx_size = 1024

[services.open-webui]
image = "{OPENWEBUI_IMAGE}"
pod = "qwebui-{rid}"
container = "qwebui-{rid}-0"
ports = [{{ host = {webui_port}, container = 8080 }}]
volumes = [{{ source = "qwebui_{rid}_data", target = "/app/backend/data" }}]
[services.open-webui.env]
OFFLINE_MODE = "true"
HF_HUB_OFFLINE = "1"
RAG_EMBEDDING_ENGINE = "openai"
WEBUI_AUTH = "false"
"""


def commands(dryrun: str, run_dir: Path) -> dict[str, list[list[str]]]:
    """unit -> the podman commands systemd would run to start it (ExecStartPre, then ExecStart)."""
    out = {}
    for unit, body in re.findall(r"---(\S+?)\.service---\n(.*?)(?=\n---\S+---|\Z)", dryrun, re.S):
        lines = [line.split("=", 1)[1] for key in ("ExecStartPre=", "ExecStart=")  # in the order systemd runs them
                 for line in body.splitlines() if line.startswith(key)]
        argvs = []
        for line in lines:
            text = line.replace("%t", str(run_dir)).replace("%N", unit).replace("%%", "%")
            argv = [a.replace("$$", "$") for a in shlex.split(text) if a not in ONLY_SYSTEMD]  # as systemd reads them
            argvs.append(["podman", *argv[1:]])
        out[unit] = argvs
    return out


def bring_up(quadlet: str, units: Path, tmp_path: Path, network: str, services: list[str], project: str) -> None:
    """Run what systemd would for the units: the network, the volumes, then `services` (pod and
    container units) in the given order; every generated unit must be among them. The unit files of
    a project other than the default carry its name first."""
    services = [f"{project}-{s}" for s in services]
    network = f"{project}-{network}"
    gen = subprocess.run([quadlet, "-dryrun"], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "QUADLET_UNIT_DIRS": str(units)})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    steps = commands(gen.stdout, run_dir)
    order = [f"{network}-network", *(u for u in steps if u.endswith("-volume")), *services]
    assert set(order) == set(steps), sorted(steps)
    for unit in order:
        for argv in steps[unit]:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
            exists = "already exists" in done.stderr
            assert done.returncode == 0 or exists, f"{unit}: {' '.join(argv)}\n{done.stderr}"


def test_the_exported_units_run_the_stack(prun, cli, write_config, smollm2, tmp_path, llama_image):
    need(image_exists(OPENWEBUI_IMAGE), f"{OPENWEBUI_IMAGE} is not built", "run scripts/build-openwebui-image.sh")
    quadlet = quadlet_binary()
    port = free_port()
    path = write_config(layout(prun, port))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    units = tmp_path / "units"
    installed = cli("--config", path, "export", "quadlet", "--install", "-o", str(units))
    assert installed.code == 0, installed.text
    secrets = podman("secret", "ls", "--format", "{{.Name}}").stdout.split()
    mine = [s for s in secrets if s.startswith(f"airpods-t{prun.id}-")]
    assert len(mine) == 3, secrets  # the llama.cpp key, Open WebUI's copy of it, its session secret
    try:
        bring_up(quadlet, units, tmp_path, prun.network, [f"qllama-{prun.id}-pod", "llamacpp",
                                                          f"qwebui-{prun.id}-pod", "open-webui"], f"t{prun.id}")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        models: set[str] = set()
        while time.monotonic() < deadline and "quadlet-chat" not in models:
            try:
                _, models = webui_models(base)
            except OSError:
                time.sleep(2)
        assert "quadlet-chat" in models, models
        inspect = podman("inspect", f"qllama-{prun.id}-0").stdout
        key = next(iter(re.findall(r"LLAMA_API_KEY=(\S+?)\"", inspect)), None)
        assert key is not None and len(key) >= 32  # reached the container from the secret store
        assert key not in "".join(p.read_text() for p in units.iterdir())
        assert call(f"{base}/health")["status"] is True
    finally:
        for pod in (f"qllama-{prun.id}", f"qwebui-{prun.id}"):
            podman("pod", "rm", "-f", "-t", "0", pod, check=False)
        if mine:
            podman("secret", "rm", *mine, check=False)


def test_the_exported_units_run_the_gateway(prun, cli, write_config, smollm2, tmp_path, llama_image):
    """The gateway at boot: its units (and its Caddyfile, which the export writes) bring up Caddy in
    front of llama.cpp; a person key answers through it over HTTPS, verified with its CA."""
    import ssl
    import urllib.error
    import urllib.request

    from tests.e2e.builders import CADDY_IMAGE, gateway_table

    need(image_exists(CADDY_IMAGE), f"{CADDY_IMAGE} is not built", "run scripts/build-caddy-image.sh")
    quadlet, rid, port = quadlet_binary(), prun.id, free_port()
    path = write_config(prun.header(keep=("llamacpp",)) + f"""
[services.llamacpp]
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "qllama-{rid}"
container = "qllama-{rid}-0"
ports = [{{ host = {free_port()}, container = 8080 }}]
""" + gateway_table(rid, port, name="qgw"))
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    key = cli("--config", path, "keys", "add", "alice").out.strip()
    units = tmp_path / "units"
    installed = cli("--config", path, "export", "quadlet", "gateway", "--install", "-o", str(units))
    assert installed.code == 0, installed.text
    mine = [s for s in podman("secret", "ls", "--format", "{{.Name}}").stdout.split()
            if s.startswith(f"airpods-t{rid}-")]
    try:
        assert key not in "".join(p.read_text() for p in units.iterdir())
        bring_up(quadlet, units, tmp_path, prun.network, [f"qllama-{rid}-pod", "llamacpp", f"qgw-{rid}-pod", "gateway"],
                 f"t{rid}")
        deadline, pem = time.monotonic() + 60, ""
        while time.monotonic() < deadline and "BEGIN CERTIFICATE" not in pem:
            pem = cli("--config", path, "keys", "ca").out
            time.sleep(0.5)
        context = ssl.create_default_context(cadata=pem)
        status = None
        while time.monotonic() < deadline + 120 and status != 200:
            req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/models",
                                         headers={"Authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=context) as resp:
                    status = resp.status
            except (urllib.error.URLError, OSError):
                time.sleep(1)
        assert status == 200
    finally:
        for pod in (f"qllama-{rid}", f"qgw-{rid}"):
            podman("pod", "rm", "-f", "-t", "0", pod, check=False)
        if mine:
            podman("secret", "rm", *mine, check=False)

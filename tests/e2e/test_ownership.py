"""Real Podman: an image built with airpods' labels, as a hostile image would carry them, run with a
plain `podman run`. Podman copies the image's labels onto the container, so it claims to be an
airpods router of the test's project, names a pod of someone else's, a URL, pinned models and a
probe key file. status, top, stop, clean and the health watcher that `start` leaves running all
ignore it, and nothing reads the file it names or sends anything to the URL."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import listener
from tests.podman_env import TEST_LABEL, build_busybox_image, llama_table, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def hostile_image(run_id: str, project: str, url_port: int, key_file: Path, victim_pod: str) -> str:
    image = f"localhost/airpods-test/claims-airpods:{run_id}"
    labels = {"io.airpods.managed": "true", "io.airpods.project": project, "io.airpods.service": "evil",
              "io.airpods.kind": "llamacpp", "io.airpods.pod": victim_pod, "io.airpods.pins": "m1",
              "io.airpods.url": f"http://127.0.0.1:{url_port}/v1", "io.airpods.health-key": str(key_file),
              "io.airpods.ports": f"127.0.0.1:{url_port}:8080", "io.airpods.health": "1/3/4/0",
              "io.airpods.stop-timeout": "ten", TEST_LABEL: run_id}
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"FROM {build_busybox_image()}", *(f'LABEL "{k}"="{v}"' for k, v in labels.items())]
        (Path(tmp) / "Containerfile").write_text("\n".join(lines) + "\n")
        podman("build", "-q", "-t", image, "-f", str(Path(tmp) / "Containerfile"), tmp, timeout=300)
    return image


def test_a_container_from_an_image_with_airpods_labels_is_ignored(prun, cli, write_config, smollm2, isolated):
    name = prun.name("mine")
    table = llama_table(name, MODEL, ctx=512, health={"interval": 1})
    path = write_config(prun.header() + table)
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    secret_dir = Path(tempfile.mkdtemp(prefix="not-airpods-"))
    secret = secret_dir / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-for-airpods\n-----END OPENSSH PRIVATE KEY-----\n")
    long_ago = time.time() - 3600
    os.utime(secret, (long_ago, long_ago + 1))  # atime before mtime: the next read moves it (relatime)
    victim = prun.name("victim")
    podman("pod", "create", "--name", victim, "--label", f"{TEST_LABEL}={prun.id}")
    podman("run", "-d", "--pod", victim, "--name", f"{victim}-app", build_busybox_image(), "sleep", "600")
    image = ""
    try:
        with listener() as stranger:
            image = hostile_image(prun.id, f"t{prun.id}", stranger.port, secret, victim)
            evil = prun.name("evil")
            podman("run", "-d", "--name", evil, image, "sleep", "600")
            labels = json.loads(podman("inspect", "--format", "{{json .Config.Labels}}", evil).stdout)
            assert labels["io.airpods.project"] == f"t{prun.id}"  # Podman gave it the image's labels
            started = cli("--config", path, "start", name)
            assert started.code == 0, started.text
            time.sleep(4)  # the watcher `start` left looks every 0.5 s
            rows = json.loads(cli("--config", path, "status", "--json").out)
            assert [r["service"] for r in rows] == [name]
            top = cli("--config", path, "top", "--json", "--interval", "0.5")
            assert top.code == 0 and evil not in top.out and "evil" not in top.out
            assert cli("--config", path, "stop").code == 0
            assert podman("inspect", "--format", "{{.State.Running}}", evil).stdout.strip() == "true"
            assert podman("pod", "inspect", "--format", "{{.State}}", victim).stdout.strip() == "Running"
            assert cli("--config", path, "clean").code == 0
            assert podman("container", "exists", evil, check=False).returncode == 0
            assert podman("pod", "exists", victim, check=False).returncode == 0
            assert podman("container", "exists", f"{victim}-app", check=False).returncode == 0
        assert stranger.connections == 0 and not stranger.raw
        assert os.stat(secret).st_atime < long_ago + 10, "something read the file the label names"
        secret.read_text()  # the control: this machine's mount does record a read
        assert os.stat(secret).st_atime > long_ago + 10
        log = (isolated / "data" / "airpods" / "health" / f"t{prun.id}.log").read_text()
        assert "evil" not in log and "OPENSSH" not in log
    finally:
        podman("rm", "-f", "-t", "0", prun.name("evil"), check=False)
        if image:
            subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)

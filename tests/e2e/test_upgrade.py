"""An upgrade recreates nothing that did not change (issue 36): a stack started on real Podman by the
airpods of a commit from before the seams redesign, then `airpods start` with this one: every
container is the one that was running (same id, same start), `status` says nothing is outdated.
The golden hashes (tests/unit/plan/test_golden_hashes.py) pin the same on fixed stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import airpods_at
from tests.podman_env import LLAMA_IMAGE, PodmanRun, free_port, image_exists, need, podman, require_podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.gateway]
ROOT = Path(__file__).resolve().parents[2]
BEFORE = "b74fd64a4a55a7ee5c20e80c461f8e939f9d5106"  # the last commit before the seams redesign
CADDY_IMAGE = "localhost/airpods-test/caddy:2"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def old_airpods(into: Path) -> Path:
    """The airpods package of BEFORE, from this checkout's history."""
    tree = airpods_at(BEFORE, into)
    if tree is None:  # a shallow clone: the history is not here (not a missing component)
        pytest.skip(f"commit {BEFORE[:7]} is not in this checkout's history (a shallow clone)")
    return tree


def stack_config(run: PodmanRun) -> str:
    rid = run.id
    return run.header() + f"""
[services.chat-{rid}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "{MODEL}"
[services.chat-{rid}.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = 1024
no_webui = true

[services.router-{rid}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
[services.router-{rid}.command_args]
ctx_size = 1024
[services.router-{rid}.models.smol]
file = "{MODEL}"
load_on_startup = true

[services.gateway]
enabled = true
image = "{CADDY_IMAGE}"
pod = "gateway-{rid}"
container = "gateway-{rid}-0"
ports = [{{ host = {free_port()}, container = 8443 }}]
volumes = [{{ source = "gateway_{rid}_data", target = "/data" }}]
"""


def airpods(code: Path | None, config: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m airpods --config CONFIG ARGS` with the airpods at `code` (None: this checkout)."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code else dict(os.environ)
    return subprocess.run([sys.executable, "-m", "airpods", "--config", config, *args], cwd=str(code or ROOT),
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def containers(run: PodmanRun) -> dict[str, tuple[str, str]]:
    """name -> (id, started at) of the run's containers but the pods' infra ones."""
    out = podman("ps", "-a", "--filter", f"label=io.airpods.test={run.id}", "--format", "json").stdout
    return {c["Names"][0]: (c["Id"], str(c.get("StartedAt"))) for c in json.loads(out or "[]") if not c.get("IsInfra")}


def test_a_stack_started_before_the_redesign_is_left_alone_by_this_airpods(smollm2, tmp_path):
    require_podman()
    for image in (LLAMA_IMAGE, CADDY_IMAGE):
        need(image_exists(image), f"{image} is not built", "run scripts/test.sh --prepare")
    before = old_airpods(tmp_path / "before")
    run = PodmanRun()
    config = tmp_path / "upgrade.toml"
    config.write_text(stack_config(run), encoding="utf-8")
    try:
        imported = airpods(before, str(config), "models", "import", str(smollm2))
        assert imported.returncode == 0, imported.stderr
        started = airpods(before, str(config), "start")
        assert started.returncode == 0, started.stderr
        made = containers(run)
        assert len(made) == 3, made

        again = airpods(None, str(config), "start")
        assert again.returncode == 0, again.stderr
        assert again.stderr.count("already running") >= 3, again.stderr
        assert "recreat" not in again.stderr, again.stderr
        assert containers(run) == made  # the same containers, not started again
        rows = json.loads(airpods(None, str(config), "status", "--json").stdout)
        assert {r["service"]: (r["outdated"], r["plan_differs"]) for r in rows} == \
            {r["service"]: (False, False) for r in rows} and len(rows) == 3
    finally:
        airpods(None, str(config), "stop")
        run.cleanup()

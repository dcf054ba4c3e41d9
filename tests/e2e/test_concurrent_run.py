"""Two `airpods run` at once on one router, with a real llama-server (issue 40, item 3): each
rewrote the router's preset from its own view; B answered, A waited 120 s ("model modelA is still
unknown") and /v1/models listed only B. Both must answer and both stay listed, on a running
router and on a stopped one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.e2e.builders import airpods, base_router
from tests.podman_env import free_port

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def at_once(*commands: list[str]) -> list[tuple[int, str, str]]:
    procs = [subprocess.Popen([sys.executable, "-m", "airpods", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=dict(os.environ)) for c in commands]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append((p.returncode, stdout, stderr))
    return out


def test_two_runs_at_once_on_one_router_both_answer_and_stay_listed(prun, write_config, smollm2, tmp_path):
    name, port = prun.name("race"), free_port()
    path = write_config(prun.header() + base_router(name, port, ctx=512))
    for as_name in ("base.gguf", "modela.gguf", "modelb.gguf", "modelc.gguf", "modeld.gguf"):
        copy = tmp_path / as_name
        shutil.copy(smollm2, copy)
        assert airpods("--config", path, "models", "import", str(copy)).returncode == 0
    assert airpods("--config", path, "start", name).returncode == 0
    for pair in (("modela", "modelb"), ("modelc", "modeld")):
        results = at_once(*[["--config", path, "run", m, "Say hi"] for m in pair])
        for (code, _out, err), model in zip(results, pair, strict=True):
            assert code == 0, f"{model}: {err}"
        rows = {r["id"]: r for r in json.loads(airpods("--config", path, "models", "ps", "--json").stdout)}
        assert all(m in rows for m in pair), rows
        if pair[0] == "modela":  # the second pair: on a stopped router
            assert airpods("--config", path, "stop", name).returncode == 0
    rows = {r["id"]: r for r in json.loads(airpods("--config", path, "models", "ps", "--json").stdout)}
    assert {"modelc", "modeld"} <= set(rows) and all(rows[m]["state"] == "loaded" for m in ("modelc", "modeld"))

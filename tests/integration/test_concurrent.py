"""Commands run at the same time, as real processes on a real Podman volume (issue 40, items 2,
4 and 8): concurrent `models import` keep every entry; two `models use` at once keep both
changes; a killed import's partial file is removed by the next import and said."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.builders import fake_gguf, volume_dir

pytestmark = pytest.mark.podman


def airpods(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "airpods", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_eight_imports_at_once_keep_every_entry_three_rounds(prun, cli, write_config, tmp_path):
    path = write_config(prun.header())
    sources = {}
    for i in range(24):
        source = tmp_path / f"src-{i}.gguf"
        fake_gguf(source, 200_000 + i)
        sources[f"m{i:02d}.gguf"] = hashlib.sha256(source.read_bytes()).hexdigest()
    names = sorted(sources)
    for round_ in range(3):
        batch = names[round_ * 8:(round_ + 1) * 8]
        procs = [airpods("--config", path, "models", "import", str(tmp_path / f"src-{int(n[1:3])}.gguf"),
                         "--name", n) for n in batch]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert all(code == 0 for code, _ in results), results
    manifest = json.loads((volume_dir(prun.models_volume) / ".airpods-models.json").read_text())
    assert {n: manifest.get(n, {}).get("sha256") for n in names} == sources
    listed = json.loads(cli("--config", path, "models", "list", "--json").out)
    assert sorted(e["file"] for e in listed) == names and all(e["sha256"] == sources[e["file"]] for e in listed)
    assert not [p.name for p in volume_dir(prun.models_volume).iterdir() if p.name.endswith((".part", ".tmp"))]


def test_a_killed_import_leaves_a_part_the_next_import_removes_and_says(prun, cli, write_config, tmp_path):
    path = write_config(prun.header())
    big = tmp_path / "big.gguf"
    fake_gguf(big, 64 << 20)
    folder = volume_dir_after_create(cli, path, prun, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_IMPORT, path, str(big)], env=os.environ.copy())
    deadline = time.monotonic() + 30
    while not list(folder.glob(".big.gguf.import-*.part")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [part] = list(folder.glob(".big.gguf.import-*.part"))
    small = tmp_path / "small.gguf"
    fake_gguf(small)
    result = cli("--config", path, "models", "import", str(small))
    assert result.code == 0, result.text
    assert f"removed {part.name}" in result.err and "an import that was killed" in result.err
    assert not part.exists()
    assert [e["file"] for e in json.loads(cli("--config", path, "models", "list", "--json").out)] == ["small.gguf"]


# An import slowed down (a chunk every 50 ms), so that a kill lands in the middle of the copy.
SLOW_IMPORT = """
import sys, time
import airpods.models.store as store
store.CHUNK = 1 << 20
real = store.ModelStore.import_file
def slow(self, src, name=None, progress=None, **kw):
    return real(self, src, name, lambda done, total: time.sleep(0.05), **kw)
store.ModelStore.import_file = slow
from airpods.cli.main import main
main(["--config", sys.argv[1], "models", "import", sys.argv[2]])
"""


def volume_dir_after_create(cli, path: str, prun, tmp_path: Path) -> Path:
    seed = tmp_path / "seed.gguf"
    fake_gguf(seed)
    assert cli("--config", path, "models", "import", str(seed)).code == 0
    assert cli("--config", path, "models", "rm", "seed.gguf", "--yes").code == 0
    return volume_dir(prun.models_volume)


ROUTER = """
[services.rtr]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "localhost/airpods-test/llama.cpp:server" }}
ports = [{{ host = {port}, container = 8080 }}]
default_model = "base"
[services.rtr.models.base]
file = "base.gguf"
"""


def test_models_use_at_once_on_a_router_keep_every_change(prun, cli, write_config, tmp_path):
    """Issue 40, item 4: both exited 0 and printed a diff; one table was lost. Three rounds of
    four at once."""
    from tests.podman_env import free_port

    path = write_config(prun.header() + ROUTER.format(port=free_port()))
    names = [f"use{i:02d}.gguf" for i in range(12)]
    for name in ["base.gguf", *names]:
        source = tmp_path / name
        fake_gguf(source)
        assert cli("--config", path, "models", "import", str(source)).code == 0
    for round_ in range(3):
        batch = names[round_ * 4:(round_ + 1) * 4]
        procs = [airpods("--config", path, "models", "use", n, "--service", "rtr") for n in batch]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert all(code == 0 for code, _ in results), results
    text = Path(path).read_text()
    missing = [n for n in names if f'file = "{n}"' not in text]
    assert not missing, text
    import tomllib

    models = tomllib.loads(text)["services"]["rtr"]["models"]
    assert sorted(m["file"] for m in models.values()) == sorted(["base.gguf", *names])

"""README.md's example session, run as written: the commands of its console block, in a clean
HOME set up as the quickstart leaves it (the locally built image in ~/.config/airpods/config.toml,
`airpods` on PATH), each checked to exit as shown. So the README cannot drift from the tool.

Two things are this test's own, so that it can never touch a user's stack on the same machine:
the config also names a project, network, model volume, pod and host port of the test's own, and
the session's `127.0.0.1:8080` is that port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.podman_env import LLAMA_IMAGE, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]


def session() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) from the example session's block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### An example session.*?```console\n(.*?)```", text, re.S)
    assert block, "README.md has no example session"
    steps: list[tuple[str, list[str]]] = []
    lines = block.group(1).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            steps.append((command, []))
        elif steps:
            steps[-1][1].append(line)
        i += 1
    return steps


def test_the_readme_example_session_runs_as_written(prun, smollm2, tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "airpods" / "models").mkdir(parents=True)
    shutil.copy(smollm2, home / ".cache" / "airpods" / "models" / smollm2.name)
    port = free_port()
    header = prun.header(keep=("llamacpp",))
    config = home / ".config" / "airpods" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"""# as scripts/quickstart.sh writes it
[services.llamacpp]
images = {{ cpu = "{LLAMA_IMAGE}" }}
# this test's own names, so that it never meets the user's stack
pod = "{prun.name('llamacpp')}"
container = "{prun.name('llamacpp')}-0"
network_aliases = ["{prun.name('llamacpp')}"]
ports = [{{ host = {port}, container = 8080 }}]
{header}""", encoding="utf-8")
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "airpods").symlink_to(Path(sys.executable).parent / "airpods")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}")
    steps = session()
    assert len(steps) >= 6 and any(c.startswith("airpods start") for c, _ in steps)
    for command, shown in steps:
        run = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        result = subprocess.run(["bash", "-c", run], env=env, capture_output=True, text=True, timeout=300,
                                check=False)
        out = result.stdout + result.stderr
        assert result.returncode == 0, f"$ {command}\n{out}"
        first = next((line.split()[0] for line in shown if line.strip()), None)
        if first is not None:
            assert first in out, f"$ {command}: the README shows {first!r} first; got:\n{out}"
        if command.startswith("curl"):
            assert '"choices"' in out, out

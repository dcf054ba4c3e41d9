"""The seams redesign (issue 36) against the code before it, in the same run: `airpods --help`,
`status`, `start` and `run` of a stack that runs already, each by the airpods of BEFORE and by this
checkout's, interleaved. Each code has its own spec cache (their keys differ), one data folder
(the same secrets and stack)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import MODEL, ROOT, Env, Series, timed
from tests.helpers import airpods_at

BEFORE = "b74fd64a4a55a7ee5c20e80c461f8e939f9d5106"  # the last commit before the redesign


def _launcher(env: Env, name: str, tree: Path, config: Path) -> list[str]:
    """`python launcher.py --config CONFIG`: the airpods in `tree`, started the same way for both codes."""
    script = env.tmp / f"airpods-{name}.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(tree)!r})\nfrom airpods.cli.main import entry\nentry()\n")
    return [sys.executable, str(script), "--config", str(config)]


def before_after(env: Env, runs: int) -> dict[str, Series]:
    """name -> Series for "CMD before" and "CMD after"; {} when BEFORE is not in the history."""
    tree = airpods_at(BEFORE, env.tmp / "before")
    if tree is None:
        print(f"skipping the seams comparison: commit {BEFORE[:7]} is not in this checkout's history")
        return {}
    # Answers capped at 32 tokens (llama-server's --n-predict), so that `run` measures airpods and
    # not how long the model goes on; status, start and run find the four services up.
    config = env.tmp / "seams.toml"
    config.write_text(env.render_config().replace("no_webui = true", "no_webui = true\nn_predict = 32"))
    started = subprocess.run([*_launcher(env, "after", ROOT, config), "start"], env=env.env, capture_output=True,
                             text=True, check=False)
    if started.returncode != 0:
        raise RuntimeError(f"the seams stack did not start: {started.stderr[-500:]}")
    codes = {"before": _launcher(env, "before", tree, config), "after": _launcher(env, "after", ROOT, config)}
    envs = {code: {**env.env, "XDG_CACHE_HOME": str(env.tmp / f"cache-{code}")} for code in codes}
    commands = {"--help": ["--help"], "status": ["status"], "start": ["start"],
                "run": ["run", MODEL, "Say hi.", "--service", "bench1"]}
    out = {f"airpods {c} {code}": Series(f"airpods {c} {code}") for c in commands for code in codes}
    for code, argv in codes.items():  # warm-up: page cache, compiled modules, each code's spec cache
        for args in commands.values():
            timed([*argv, *args], envs[code], check=False)
    for _ in range(runs):
        for c, args in commands.items():
            for code, argv in codes.items():
                out[f"airpods {c} {code}"].samples.append(timed([*argv, *args], envs[code], check=False))
    return out

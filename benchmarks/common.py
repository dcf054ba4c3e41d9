"""Shared pieces of the benchmark runner: timing, statistics, an isolated airpods environment."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.podman_env import LLAMA_IMAGE, free_port  # the same local images and helpers as the tests

ROOT = Path(__file__).resolve().parent.parent
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
NETWORK = "airpods-bench"
VOLUME = "airpods_bench_models"


@dataclass
class Series:
    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self) -> dict:
        return {"name": self.name, "n": len(self.samples), "min": self.min, "median": self.median,
                "samples": self.samples}


def on_host(spec: dict, argv: list[str]) -> list[str]:
    """A service's argv for llama-server run on the host: a path it has in the container through
    a bind mount (the health probe's key file) is the host file itself."""
    binds = {v["target"]: v["source"] for v in spec["volumes"] if v["source"].startswith("/")}
    return [binds.get(a, a) for a in argv]


def timed(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=check)
    return time.perf_counter() - start


def interleave(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, Series]:
    """Run each command once per round, rounds alternating, so drift hits all alike."""
    out = {name: Series(name) for name in commands}
    for argv in commands.values():  # one warm-up each (page cache, pyc)
        timed(argv, env, check=False)
    for _ in range(runs):
        for name, argv in commands.items():
            out[name].samples.append(timed(argv, env, check=False))
    return out


class Env:
    """An airpods environment of its own: temp XDG dirs, a bench config, the model imported."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="airpods-bench-"))
        self.airpods = str(Path(sys.executable).parent / "airpods")
        real_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(self.tmp / "config"),
                    "XDG_CACHE_HOME": str(self.tmp / "cache"),
                    "AIRPODS_BUILD_CACHE": os.environ.get("AIRPODS_BUILD_CACHE") or f"{real_cache}/airpods",
                    "XDG_DATA_HOME": str(self.tmp / "data"), "NO_COLOR": "1"}
        self.env.pop("AIRPODS_CONFIG", None)
        # As installed for users: Python caches compiled modules (this workplace's shells set
        # PYTHONDONTWRITEBYTECODE, which would make every airpods run compile ~190 modules again).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.config = self.tmp / "bench.toml"
        self.instances = 4
        self.ports = [free_port() for _ in range(self.instances)]
        self.config.write_text(self.render_config())

    def render_config(self, enabled: int | None = None, extra: str = "") -> str:
        """bench1..bench4; with `enabled`, only the first that many are enabled (the CPU plan
        counts enabled llama.cpp services); `extra` goes into [runtime]."""
        lines = [f'[runtime]\nproject = "bench"\nname_prefix = ""\nnetwork = "{NETWORK}"\nmodels_volume = "{VOLUME}"\n'
                 f'labels = {{ "io.airpods.bench" = "1" }}\n{extra}\n',
                 "[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n"]
        for i, port in enumerate(self.ports, start=1):
            lines.append(f"""
[services.bench{i}]
enabled = {"true" if enabled is None or i <= enabled else "false"}
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["bench{i}"]
ports = [{{ host = {port}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
default_model = "{MODEL}"
[services.bench{i}.command_args]
model = "/models/{{{{ default_model }}}}"
alias = "{{{{ default_model | replace('.gguf', '') }}}}"
n_gpu_layers = 0
ctx_size = 4096
no_webui = true
""")
        return "\n".join(lines)

    def cli(self, *args: str) -> list[str]:
        return [self.airpods, "--config", str(self.config), *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.cli(*args), capture_output=True, text=True, env=self.env, check=check)

    def render(self, service: str) -> dict:
        return json.loads(self.run("config", "render", service, "--json", "--show-secrets").stdout)

    def prepare(self, model: Path) -> None:
        listing = self.run("models", "list", "--json", check=False)
        if listing.returncode != 0 or MODEL not in listing.stdout:
            self.run("models", "import", str(model))

    def cleanup(self) -> None:
        """Everything the run made: its project's pods, containers and volume, the raw baseline's
        pod, and its network (named for the benchmarks alone)."""
        subprocess.run(self.cli("stop", "--remove", "--timeout", "2"), env=self.env, capture_output=True, check=False)
        subprocess.run(self.cli("clean", "--volumes", "--yes"), env=self.env, capture_output=True, check=False)
        for pod in ("bench-raw", "bench-py"):
            subprocess.run(["podman", "pod", "rm", "-f", "-t", "0", pod], capture_output=True, check=False)
        subprocess.run(["podman", "volume", "rm", VOLUME], capture_output=True, check=False)
        subprocess.run(["podman", "network", "rm", NETWORK], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def smollm2() -> Path:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "get-smollm2.sh")], capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def http_status(url: str, timeout: float = 0.5) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None

"""CLI latency: airpods --help / --version / status against `python -c pass` and `podman ps`."""

from __future__ import annotations

import sys

from benchmarks.common import Env, Series, interleave


def cli_latency(env: Env, runs: int) -> dict[str, Series]:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "podman ps": ["podman", "ps"],
        "airpods --help": env.cli("--help"),
        "airpods --version": env.cli("--version"),
        "airpods status": env.cli("status"),
    }
    return interleave(commands, runs, env.env)

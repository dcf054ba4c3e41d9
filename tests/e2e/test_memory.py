"""The memory preflight and out-of-memory reporting with the real llama-server under real Podman."""

from __future__ import annotations

import json

import pytest

from tests.e2e.builders import service
from tests.podman_env import podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def with_args(text: str, **args: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in args.items())
    return text.replace("ctx_size = 1024\n", extra)


def test_over_the_limit_is_refused_and_forced_start_reports_out_of_memory(prun, cli, write_config, smollm2):
    name = prun.name("mem")
    svc = with_args(service(name), ctx_size=16384).replace(
        "[services." + name + "]\n", "[services." + name + "]\nresources = { memory = \"256m\" }\n", 1)
    path = write_config(prun.header() + svc)
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    fit = json.loads(cli("--config", path, "models", "fit", MODEL, "--service", name, "--json").out)
    assert fit["ctx"] == 16384 and fit["available"] == 256 << 20 and not fit["fits"] and fit["max_ctx"] > 0

    refused = cli("--config", path, "start", name)
    assert refused.code == 2, refused.text
    assert "256 MiB" in refused.err and f"{fit['total'] / 2**20:.0f} MiB" in refused.err  # both numbers
    assert f"ctx_size = {fit['max_ctx']}" in refused.err and "Traceback" not in refused.text
    assert podman("pod", "exists", name, check=False).returncode == 1  # nothing created

    forced = cli("--config", path, "start", name, "--force")
    assert forced.code == 1, forced.text
    assert "out of memory" in forced.err and "256 MiB" in forced.err
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    assert row["last_failure"], row
    assert row["last_failure"]["reason"] == "out of memory" and row["memory_limit"] == "256m"

    # The same total as the preflight used, and the ctx it suggests does start.
    fits = write_config(prun.header() + with_args(service(name), ctx_size=fit["max_ctx"]).replace(
        "[services." + name + "]\n", "[services." + name + "]\nresources = { memory = \"256m\" }\n", 1))
    started = cli("--config", fits, "start", name)
    assert started.code == 0, started.text


def test_budget_counts_the_instances_already_running(prun, cli, write_config, smollm2):
    a, b = prun.name("ba"), prun.name("bb")
    probe = write_config(prun.header() + with_args(service(a), ctx_size=2048) + with_args(service(b), ctx_size=2048))
    assert cli("--config", probe, "models", "import", str(smollm2)).code == 0
    one = json.loads(cli("--config", probe, "models", "fit", MODEL, "--service", a, "--json").out)["total"]
    budget = f"{(one + (16 << 20)) >> 20}m"  # just above one instance's estimate
    path = write_config(prun.header(memory_budget=budget)
                        + with_args(service(a), ctx_size=2048) + with_args(service(b), ctx_size=2048))
    assert cli("--config", path, "start", a).code == 0
    second = cli("--config", path, "start", b)
    assert second.code == 2, second.text
    assert f"stop {a}" in second.err and podman("pod", "exists", b, check=False).returncode == 1
    assert cli("--config", path, "stop", a).code == 0
    again = cli("--config", path, "start", b)
    assert again.code == 0, again.text

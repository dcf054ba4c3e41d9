"""`airpods bench` against a real llama-server: a service not running is started for the bench and
stopped after; prompt and generation tokens/s come from llama-server's own timings; each run is
in the history with what it ran on and what was predicted for it; a run made slower on purpose
(one thread instead of two) is flagged, naming the change; `--history` charts them."""

from __future__ import annotations

import json

import pytest

from tests.podman_env import llama_table, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bench(cli, path: str, *extra: str) -> dict:
    result = cli("--config", path, "bench", "--prompt-tokens", "64", "--gen-tokens", "48", "--repeat", "2",
                 "--json", *extra)
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_bench_measures_records_and_flags_a_slower_run(prun, cli, write_config, smollm2):
    name = prun.name("bench")
    two = write_config(prun.header() + llama_table(name, MODEL, ctx=1024) + "threads = 2\n")
    assert cli("--config", two, "models", "import", str(smollm2)).code == 0

    first = bench(cli, two)
    [row] = json.loads(cli("--config", two, "status", name, "--json").out)
    container = row["container"]
    assert podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() == "false"  # stopped after
    assert first["model"] == MODEL and first["quant"] == "Q4_1" and first["service"] == name
    assert first["generation_tokens_per_s"] > 5 and first["prompt_tokens_per_s"] > first["generation_tokens_per_s"]
    assert first["gen_tokens"] >= 48 and 50 <= first["prompt_tokens"] <= 80, first  # llama-server's own count
    # its cgroup's peak: weights already in the page cache (the import read them) are not charged to it
    assert first["first_token_ms"] > 0 and first["memory_bytes"] > 10 << 20 and first["estimate_bytes"]
    assert first["flags"]["threads"] == 2 and first["flags"]["ctx"] == 1024 and first["image_digest"]
    assert first["weights"] > 80 << 20 and first["airpods_version"]

    second = bench(cli, two, "--keep")
    assert second["predicted_generation_tokens_per_s"] and "1 bench here" in second["prediction_basis"]
    assert podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() == "true"  # --keep
    ratio = second["generation_tokens_per_s"] / second["predicted_generation_tokens_per_s"]
    print(f"measured {second['generation_tokens_per_s']:.1f} tokens/s, predicted from the first run "
          f"{second['predicted_generation_tokens_per_s']:.1f} ({ratio:.2f}x)")
    assert 0.75 <= ratio <= 1.25  # the same model and settings: the prediction is the first run's speed

    one = write_config(prun.header() + llama_table(name, MODEL, ctx=1024) + "threads = 1\n")
    slower = bench(cli, one)
    print(f"two threads {second['generation_tokens_per_s']:.1f}, one {slower['generation_tokens_per_s']:.1f}")
    assert slower["slower"]["drop_percent"] > 10 and "threads 2 -> 1" in slower["slower"]["changed"], slower

    listed = cli("--config", one, "bench", "--history", "--json")
    runs = json.loads(listed.out)
    assert len(runs) == 3 and "slower" in runs[2] and "slower" not in runs[0] and "slower" not in runs[1]
    table = cli("--config", one, "bench", "--history", MODEL)
    assert table.code == 0 and "slower: threads 2 -> 1" in table.out, table.text
    chart = next(line for line in table.out.splitlines() if line.startswith(MODEL))
    assert "3 runs" in chart and any(c in chart for c in "▁▂▃▄▅▆▇█"), chart
    csv = cli("--config", one, "bench", "--history", "--export", "csv").out.splitlines()
    assert csv[0].startswith("at,model,service") and len(csv) == 4

    fit = cli("--config", one, "models", "fit", MODEL, "--json")
    measured = json.loads(fit.out)["measured"]
    assert measured["runs"] == 3 and measured["memory_bytes"] and json.loads(fit.out)["speed"]["basis"]


def test_bench_of_a_routers_model_with_requests_at_once(prun, cli, write_config, smollm2):
    from tests.podman_env import LLAMA_IMAGE, free_port

    router = prun.name("benchr")
    path = write_config(prun.header() + f"""
[services.{router}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{router}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
[services.{router}.command_args]
ctx_size = 1024
parallel = 2
no_webui = true
[services.{router}.models.one]
file = "{MODEL}"
""")
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    got = bench(cli, path, "one", "--parallel", "2")
    assert got["service"] == router and got["model_id"] == "one" and got["model"] == MODEL and got["parallel"] == 2
    assert got["generation_tokens_per_s"] > 5 and got["flags"]["parallel"] == 2, got
    [row] = json.loads(cli("--config", path, "status", router, "--json").out)
    assert row["state"] != "running"  # started for the bench, stopped after

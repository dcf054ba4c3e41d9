"""A real llama-server router whose resident set is decided by memory: max_loaded = "auto" with a
budget that holds two of its models; the pinned one stays loaded across requests to three
others; a model with ttl = 5 is unloaded (asleep, its memory freed) after about 5 s idle while
the pinned one is not; a model too large for the budget is left out, and `models ps` says why."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.builders import api_key, chat_model
from tests.podman_env import LLAMA_IMAGE, free_port

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
CTX = 512


def _each(model_file) -> int:
    """One model's estimate at the router's ctx and one slot, as airpods computes it."""
    from airpods.models.gguf_header import read_model
    from airpods.plan.memory import estimate, facts_from_header, shape_from_argv

    header = read_model(model_file)
    return estimate(facts_from_header(header.kv, header.tensor_bytes),
                    shape_from_argv(["--ctx-size", str(CTX), "--parallel", "1"])).total


def config(prun, name: str, budget_mib: int) -> str:
    models = "".join(f"""
[services.{name}.models.{mid}]
file = "{mid}.gguf"
{extra}""" for mid, extra in (("pinned", "pin = true"), ("b", ""), ("c", ""), ("d", ""), ("brief", "ttl = 5"),
                              ("huge", "command_args = { ctx_size = 32768, parallel = 4 }")))
    return prun.header(memory_budget=f"{budget_mib}m") + f"""
[services.{name}]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {free_port()}, container = 8080 }}]
health = {{ path = "/health", timeout = 120, interval = 5 }}
default_model = "pinned"
[services.{name}.command_args]
ctx_size = {CTX}
parallel = 1
no_webui = true
""" + models


def _post(url: str, key: str, model: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).encode()
    req = urllib.request.Request(url + "/chat/completions", data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def ps(cli, path: str, name: str) -> dict[str, dict]:
    result = cli("--config", path, "models", "ps", "--service", name, "--json")
    assert result.code == 0, result.text
    return {r["id"]: r for r in json.loads(result.out)}


def test_pinned_stays_ttl_unloads_and_the_left_out_says_why(prun, cli, write_config, smollm2, isolated):
    name = prun.name("resident")
    budget = int(_each(smollm2) * 2.5) >> 20  # room for two models, not three
    path = write_config(config(prun, name, budget))
    for mid in ("pinned", "b", "c", "d", "brief", "huge"):
        assert cli("--config", path, "models", "import", str(smollm2), "--name", f"{mid}.gguf").code == 0
    rendered = json.loads(cli("--config", path, "config", "render", name, "--json").out)
    assert rendered["router"]["max_loaded"] == 2, rendered["router"]
    assert set(rendered["router"]["left_out"]) == {"huge"}
    started = cli("--config", path, "start", name)
    assert started.code == 0, started.text
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    url, key = row["url"], api_key(isolated, name)
    assert ps(cli, path, name)["pinned"]["state"] == "loaded"  # start waits for it, as for load_on_startup
    for other in ("b", "c", "d"):
        code, _ = chat_model(url, key, other)
        assert code == 200, other
        time.sleep(1.0)
        models = ps(cli, path, name)
        assert models["pinned"]["state"] == "loaded", (other, models)
        assert models[other]["state"] == "loaded", (other, models)
        loaded = [m for m, r in models.items() if r["state"] == "loaded"]
        assert len(loaded) <= 2, loaded
    evicted = ps(cli, path, name)["b"]
    assert evicted["state"] == "unloaded" and evicted["why"].startswith("max_loaded = 2 are loaded"), evicted
    huge = ps(cli, path, name)["huge"]
    assert huge["state"] == "left out" and "would exceed RAM" in huge["why"], huge
    asked = time.monotonic()
    code, body = _post(url, key, "huge")  # never loaded: an OpenAI-shaped error at once, not a hang
    assert code in (400, 404) and "huge" in body["error"]["message"] and time.monotonic() - asked < 5, body
    assert ps(cli, path, name)["pinned"]["state"] == "loaded"
    code, _ = chat_model(url, key, "brief")
    assert code == 200
    time.sleep(1.0)
    assert ps(cli, path, name)["brief"]["state"] == "loaded"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and ps(cli, path, name)["brief"]["state"] == "loaded":
        time.sleep(0.5)
    models = ps(cli, path, name)
    assert models["brief"]["state"] in ("sleeping", "unloaded"), models["brief"]
    assert "idle for 5 s" in models["brief"]["why"], models["brief"]
    assert models["pinned"]["state"] == "loaded", models["pinned"]
    table = cli("--config", path, "models", "ps", "--service", name)
    assert "would exceed RAM" in table.out and "WHY" in table.out

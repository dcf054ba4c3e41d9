"""Router mode: the time from a request for a model that is not loaded to its first token (a swap,
with max_loaded = 1), and a warm request's latency, through airpods' router container against the
bare llama-server router on the host: same binary, same models, same preset, requests interleaved."""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import LLAMA_IMAGE, MODEL, Env, Series, free_port, on_host
from benchmarks.inference import host_server

SECOND = "SmolLM2-copy.gguf"


def _config(env: Env, port: int) -> str:
    return env.render_config(enabled=0) + f"""
[services.bench-router]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["bench-router"]
ports = [{{ host = {port}, container = 8080 }}]
health = {{ path = "/health", timeout = 120 }}
max_loaded = 1
[services.bench-router.command_args]
ctx_size = 2048
no_webui = true
[services.bench-router.models.a]
file = "{MODEL}"
load_on_startup = true
[services.bench-router.models.b]
file = "{SECOND}"
"""


def _first_token(port: int, key: str, model: str) -> tuple[float, float]:
    """(seconds to the first streamed token, seconds to the end) of a short chat."""
    body = json.dumps({"model": model, "stream": True, "max_tokens": 16, "temperature": 0,
                       "messages": [{"role": "user", "content": "Name one animal."}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    began = time.perf_counter()
    first = None
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        for line in conn.getresponse():
            if first is None and line.startswith(b"data: ") and b'"content"' in line:
                first = time.perf_counter() - began
    finally:
        conn.close()
    return (first if first is not None else float("nan")), time.perf_counter() - began


def swap_latency(env: Env, model_path: Path, runs: int) -> dict[str, Series]:
    listing = env.run("models", "list", "--json").stdout
    if SECOND not in listing:
        env.run("models", "import", str(model_path), "--name", SECOND)
    port = free_port()
    env.config.write_text(_config(env, port))
    env.run("start", "bench-router")
    spec = env.render("bench-router")
    key = spec["env"]["LLAMA_API_KEY"]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        for name in (MODEL, SECOND):
            (models / name).symlink_to(model_path)
        preset = Path(tmp) / "models.ini"
        preset.write_text(spec["router_preset"].replace("/models/", f"{models}/"))
        argv = on_host(spec, [a if a != "/etc/airpods/models.ini" else str(preset) for a in spec["command"]])
        host, host_port = host_server(argv, key)
        try:
            ports = {"airpods": spec["ports"][0]["host"], "host": host_port}
            out = {f"{what} {where}": Series(f"{what}, {where} router")
                   for what in ("swap first token", "warm first token") for where in ports}
            for p in ports.values():  # warm-up: both models once, end with a loaded
                for m in ("a", "b", "a"):
                    _first_token(p, key, m)
            for i in range(runs):
                target = "b" if i % 2 == 0 else "a"  # always the one not loaded
                for where, p in ports.items():
                    out[f"swap first token {where}"].samples.append(_first_token(p, key, target)[0])
                    out[f"warm first token {where}"].samples.append(_first_token(p, key, target)[0])
            return out
        finally:
            host.terminate()
            host.wait(10)
            env.run("stop", "--remove", "--timeout", "2", check=False)
            env.config.write_text(env.render_config())

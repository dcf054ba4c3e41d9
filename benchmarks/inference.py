"""Inference parity: the airpods-started container against the bare llama-server binary on the
host, same model, same argv (so same threads, batch size, mmap), requests interleaved."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from benchmarks.common import Env, Series, free_port, http_status, on_host

PROMPT = ("You are a careful assistant. Summarise the following text in plain words. " * 12
          + "Text: llamas are domesticated South American camelids used as pack animals.")


def host_binary() -> Path:
    base = Path(os.environ.get("AIRPODS_BUILD_CACHE") or Path.home() / ".cache" / "airpods")
    return base / "llama.cpp-0.3.36" / "bin" / "llama-server"


def _complete(port: int, key: str, n_predict: int) -> dict:
    body = json.dumps({"prompt": PROMPT, "n_predict": n_predict, "temperature": 0, "ignore_eos": True,
                       "cache_prompt": False, "seed": 1}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())["timings"]


def host_server(argv: list[str], key: str) -> tuple[subprocess.Popen, int]:
    """The bare llama-server binary with a container's argv, on a free loopback port, once healthy."""
    argv, port = list(argv), free_port()
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    host = subprocess.Popen([str(host_binary()), *argv], env={**os.environ, "LLAMA_API_KEY": key},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while http_status(f"http://127.0.0.1:{port}/health") != 200:
        if time.monotonic() > deadline or host.poll() is not None:
            host.kill()
            raise RuntimeError("the host llama-server did not become healthy")
        time.sleep(0.05)
    return host, port


def parity(env: Env, model: Path, runs: int, n_predict: int) -> dict[str, Series]:
    spec = env.render("bench1")
    env.run("start", "bench1")
    key = spec["env"]["LLAMA_API_KEY"]
    argv = on_host(spec, list(spec["command"]))
    argv[argv.index("--model") + 1] = str(model)
    host, host_port = host_server(argv, key)
    try:
        ports = {"container": spec["ports"][0]["host"], "host": host_port}
        out = {f"{what} {where}": Series(f"{what} tokens/s, {where}")
               for what in ("generation", "prompt") for where in ports}
        for port in ports.values():  # warm-up
            _complete(port, key, 8)
        for _ in range(runs):
            for where, port in ports.items():
                t = _complete(port, key, n_predict)
                out[f"generation {where}"].samples.append(t["predicted_per_second"])
                out[f"prompt {where}"].samples.append(t["prompt_per_second"])
        return out
    finally:
        host.terminate()
        host.wait(10)

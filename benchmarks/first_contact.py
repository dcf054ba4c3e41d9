"""Time to the first token of `airpods run MODEL PROMPT` (model in the volume, service stopped)
against the bare llama-server binary started by hand with the same argv, then the same chat
streamed over HTTP: from the command's launch to the first answer byte, runs interleaved."""

from __future__ import annotations

import http.client
import json
import subprocess
import time

from benchmarks.common import MODEL, Env, Series, on_host
from benchmarks.inference import host_server

PROMPT = "Say hi."


def _first_token_http(port: int, key: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": PROMPT}], "stream": True, "max_tokens": 16})
    conn.request("POST", "/v1/chat/completions", body=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    resp = conn.getresponse()
    while line := resp.readline():
        if line.startswith(b"data:") and b'"content":"' in line and b'"content":""' not in line:
            break
    conn.close()


def _bare(argv: list[str], key: str) -> float:
    began = time.perf_counter()
    host, port = host_server(argv, key)
    try:
        _first_token_http(port, key)
        return time.perf_counter() - began
    finally:
        host.terminate()
        host.wait(10)


def _airpods(env: Env) -> float:
    env.run("stop", "bench1")
    began = time.perf_counter()
    proc = subprocess.Popen(env.cli("run", MODEL, "--service", "bench1", PROMPT), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env.env)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    took = time.perf_counter() - began
    proc.stdout.close()  # the rest of the answer is not measured: airpods stops it (a closed pipe)
    proc.wait(120)
    if not first or proc.returncode != 0:
        raise RuntimeError(f"airpods run gave no answer (exit {proc.returncode})")
    return took


def first_token(env: Env, model, runs: int) -> dict[str, Series]:
    spec = env.render("bench1")
    key = spec["env"]["LLAMA_API_KEY"]
    argv = on_host(spec, list(spec["command"]))
    argv[argv.index("--model") + 1] = str(model)
    out = {"airpods": Series("airpods run MODEL PROMPT: first token (service stopped)"),
           "bare": Series("bare llama-server + streamed chat: first token")}
    env.run("start", "bench1")  # the container exists; each airpods round starts it from stopped
    _airpods(env), _bare(argv, key)  # warm-up: page cache, pyc
    for _ in range(runs):
        out["airpods"].samples.append(_airpods(env))
        out["bare"].samples.append(_bare(argv, key))
    env.run("stop", "bench1")
    return out

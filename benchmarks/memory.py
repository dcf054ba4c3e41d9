"""Memory estimate accuracy: `airpods models fit --json` (the preflight's own number) against the
container's measured peak (cgroup v2 `memory.peak`, v1 `memory.max_usage_in_bytes`) after one
request, for SmolLM2 at several contexts, slot counts and cache types. The page cache is dropped
before each start (as root) so that the model's pages are charged to the container that reads
them, as on a machine where the model is not already cached by someone else."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from benchmarks.common import MODEL, Env, Series, http_status

CASES = [  # (label, command_args)
    ("ctx 2048, 1 slot", {"ctx_size": 2048, "parallel": 1}),
    ("ctx 2048, 4 slots", {"ctx_size": 2048, "parallel": 4}),
    ("ctx 8192, 1 slot", {"ctx_size": 8192, "parallel": 1}),
    ("ctx 8192, 4 slots", {"ctx_size": 8192, "parallel": 4}),
    ("ctx 0 (trained: 8192), 1 slot", {"ctx_size": 0, "parallel": 1}),
    ("ctx 8192, 1 slot, --cache-type-k q8_0", {"ctx_size": 8192, "parallel": 1, "cache_type_k": "q8_0"}),
]


def _peak(container: str) -> int | None:
    import subprocess

    path = subprocess.run(["podman", "inspect", "--format", "{{.State.CgroupPath}}", container],
                          capture_output=True, text=True, check=False).stdout.strip()
    for candidate in (Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.peak",
                      Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.max_usage_in_bytes"):
        try:
            return int(candidate.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _request(port: int, key: str) -> None:
    body = json.dumps({"prompt": "Tell me about llamas. " * 20, "n_predict": 32, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def accuracy(env: Env, runs: int) -> tuple[list[list[str]], list[Series]]:
    rows, series = [], []
    for label, args in CASES:
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in args.items())
        env.config.write_text(env.render_config(enabled=1).replace("ctx_size = 4096\n", extra))
        estimate = json.loads(env.run("models", "fit", MODEL, "--service", "bench1", "--json").stdout)["total"]
        ratios = Series(f"estimate / measured peak: {label}")
        peaks = []
        for _ in range(runs):
            env.run("stop", "--remove", "--timeout", "2", check=False)
            dropped = _drop_caches()
            env.run("start", "bench1")
            spec = env.render("bench1")
            port, key = spec["ports"][0]["host"], spec["env"]["LLAMA_API_KEY"]
            while http_status(f"http://127.0.0.1:{port}/health") != 200:
                time.sleep(0.05)
            _request(port, key)
            peak = _peak("bench1-0")
            if peak:
                peaks.append(peak)
                ratios.samples.append(estimate / peak)
        env.run("stop", "--remove", "--timeout", "2", check=False)
        if not peaks:
            continue
        peak = sorted(peaks)[len(peaks) // 2]
        ratio = estimate / peak
        rows.append([label, f"{estimate / 2**20:.1f} MiB", f"{peak / 2**20:.1f} MiB", f"{ratio:.3f}",
                     "yes" if 0.85 <= ratio <= 1.15 else "**no**", "yes" if dropped else "no (not root)"])
        series.append(ratios)
    env.config.write_text(env.render_config())
    return rows, series


def header_speed(runs: int) -> tuple[Series, Series]:
    """Reading a GGUF header with a 150k-token vocabulary and 150k merges (a Qwen-sized tokenizer)
    with airpods' reader, against reading the same bytes with one read() call (the I/O floor)."""
    import tempfile

    from airpods.models.gguf_header import read_header
    from tests.gguf_builder import llama_like, write_gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vocab150k.gguf"
        kv = {**llama_like("qwen2", 28, 1536, 12, 2, 8960, 151_936, 32768),
              "tokenizer.ggml.tokens": [f"token-{i:06d}" for i in range(151_936)],
              "tokenizer.ggml.merges": [f"tok{i} en{i}" for i in range(151_387)]}
        write_gguf(path, kv, [("token_embd.weight", 12, [1536, 151_936])])
        header_bytes = read_header(path).data_offset
        ours, floor = Series("GGUF header read, 150k vocabulary + 150k merges"), Series("read() of the same bytes")
        for _ in range(runs):
            began = time.perf_counter()
            read_header(path)
            ours.samples.append(time.perf_counter() - began)
            began = time.perf_counter()
            with open(path, "rb") as fh:
                fh.read(header_bytes)
            floor.samples.append(time.perf_counter() - began)
    return ours, floor

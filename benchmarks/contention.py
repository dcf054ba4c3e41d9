"""CPU contention: N llama.cpp instances started by airpods with the default config (no threads
set), all generating at once, against one instance alone measured in the same run; and the same
with `runtime.cpu_plan = "off"` (llama-server's own threads, one per core, in every instance)."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import Env, Series

N_PREDICT = 128
PROMPT = "Write a long story about a llama who learns to count."


def _generate(port: int, key: str, deadline: float, n_predict: int = N_PREDICT) -> tuple[int, float]:
    """One /completion (not streamed: parsing a stream costs the client CPU the servers need):
    the tokens generated and llama-server's own generation rate; (0, 0) when cut off at `deadline`."""
    body = json.dumps({"prompt": PROMPT, "n_predict": n_predict, "ignore_eos": True, "temperature": 0,
                       "cache_prompt": False, "seed": 1}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=max(1.0, deadline - time.monotonic()))
    try:
        conn.request("POST", "/completion", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        timings = json.loads(conn.getresponse().read())["timings"]
        return int(timings["predicted_n"]), float(timings["predicted_per_second"])
    except TimeoutError:
        return 0, 0.0
    finally:
        conn.close()


def _round(targets: list[tuple[int, str]], limit: float, n_predict: int = N_PREDICT) -> tuple[float, float]:
    """All instances generate at the same time: (total tokens / wall time, the sum of each
    instance's own generation rate)."""
    began = time.perf_counter()
    deadline = time.monotonic() + limit
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        results = list(pool.map(lambda t: _generate(*t, deadline, n_predict), targets))
    wall = time.perf_counter() - began
    return sum(t for t, _ in results) / wall, sum(r for _, r in results)


def _measure(env: Env, n: int, plan: str, runs: int, timeout: float) -> Series:
    env.config.write_text(env.render_config(enabled=n, extra=f'cpu_plan = "{plan}"'))
    names = [f"bench{i}" for i in range(1, n + 1)]
    env.run("start", *names)
    targets = []
    for name in names:
        spec = env.render(name)
        targets.append((spec["ports"][0]["host"], spec["env"]["LLAMA_API_KEY"]))
    _round(targets, timeout, 8)  # warm-up (page cache, first-request setup)
    what = f"{n} instance{'s' if n > 1 else ''} at once, cpu_plan = {plan}"
    wall, engine = Series(f"{what}: tokens/s, wall clock"), Series(f"{what}: sum of llama-server rates")
    for _ in range(runs):
        a, b = _round(targets, timeout)
        wall.samples.append(a)
        engine.samples.append(b)
    env.run("stop", "--remove", "--timeout", "2")
    return wall, engine


def contention(env: Env, runs: int, counts: tuple[int, ...], off_counts: tuple[int, ...],
               timeout: float = 150.0) -> dict[str, Series]:
    """Series keyed 'split N' / 'off N' (aggregate tokens/s by the wall clock: prompt, HTTP and
    stragglers included) and 'split N engine' / 'off N engine' (the sum of the rates llama-server
    reports for its own generation), one sample per round. A round
    ends when every instance has its 128 tokens; one still busy after `timeout` seconds counts 0."""
    out: dict[str, Series] = {}
    for n in sorted(set(counts) | set(off_counts)):
        if n in counts:
            out[f"split {n}"], out[f"split {n} engine"] = _measure(env, n, "split", runs, timeout)
        if n in off_counts:
            out[f"off {n}"], out[f"off {n} engine"] = _measure(env, n, "off", max(1, min(runs, 3)), timeout)
    env.config.write_text(env.render_config())
    return out

"""Start overhead vs a raw podman-CLI script, readiness latency, stop latency, scaling."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import LLAMA_IMAGE, NETWORK, VOLUME, Env, Series, http_status

# What airpods creates for the service, by hand: the pod, the container with its mounts (the
# model volume and the health probe's key file), key and health check, then a health loop.
RAW_START = """set -e
port=$1; key=$2; shift 2
podman pod create --name bench-raw --network {network} --network-alias bench-raw -p 127.0.0.1:$port:8080 >/dev/null
podman run -d --name bench-raw-0 --pod bench-raw -v {volume}:/models:ro $MOUNTS -e LLAMA_API_KEY=$key \
  --health-cmd "$HEALTH_CMD" --health-interval "$HEALTH_INTERVAL" --health-retries 3 \
  --health-start-period "$HEALTH_START" --health-on-failure restart {image} "$@" >/dev/null
# A 10 ms pause between probes: a loop with none steals a core from llama-server on 2 cores.
until curl -sf --connect-timeout 0.2 --max-time 1 -o /dev/null http://127.0.0.1:$port/health; do sleep 0.01; done
"""


def _airpods_start(env: Env, port: int) -> tuple[float, float | None]:
    """Time `airpods start bench1`; also how long after /health first said 200 (seen by a 10 ms
    poller) airpods reported healthy."""
    first_ok: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if http_status(f"http://127.0.0.1:{port}/health", timeout=0.2) == 200:
                first_ok.append(time.perf_counter())
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    began = time.perf_counter()
    proc = subprocess.Popen(env.cli("start", "bench1"), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env.env)
    reported = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if reported is None and line.startswith("bench1: healthy"):
            reported = time.perf_counter()
    code = proc.wait()
    total = time.perf_counter() - began
    done.set()
    poller.join(1)
    if code != 0:
        raise RuntimeError(f"airpods start failed with exit code {code}")
    latency = (reported - first_ok[0]) if reported and first_ok else None
    return total, latency


def start_overhead(env: Env, runs: int) -> dict:
    spec = env.render("bench1")
    port = spec["ports"][0]["host"]
    script = Path(tempfile.mkdtemp()) / "raw-start.sh"
    script.write_text(RAW_START.format(network=NETWORK, volume=VOLUME, image=LLAMA_IMAGE))
    raw_argv = ["bash", str(script), str(port), spec["env"]["LLAMA_API_KEY"], *spec["command"]]
    mounts = " ".join(f"-v {v['source']}:{v['target']}:{v['mode']}" for v in spec["volumes"]
                      if v["target"] != "/models")
    health = spec["health"]
    raw_env = {**env.env, "MOUNTS": mounts, "HEALTH_CMD": health["check"] or "true",
               "HEALTH_INTERVAL": f"{health['interval'] or 30:g}s", "HEALTH_START": f"{health['start_period']:g}s"}
    airpods, raw, ready = Series("airpods start"), Series("raw podman script"), Series("readiness latency")
    stop_a, stop_r = Series("airpods stop"), Series("podman pod stop")
    env.run("start", "bench1")  # network exists for both, image warm
    env.run("stop", "bench1", "--remove")
    for _ in range(runs):
        total, latency = _airpods_start(env, port)
        airpods.samples.append(total)
        if latency is not None:
            ready.samples.append(latency)
        began = time.perf_counter()
        env.run("stop", "bench1")
        stop_a.samples.append(time.perf_counter() - began)
        env.run("stop", "bench1", "--remove")

        began = time.perf_counter()
        subprocess.run(raw_argv, check=True, capture_output=True, env=raw_env, timeout=120)
        raw.samples.append(time.perf_counter() - began)
        began = time.perf_counter()
        subprocess.run(["podman", "pod", "stop", "-t", "10", "bench-raw"], check=True, capture_output=True)
        stop_r.samples.append(time.perf_counter() - began)
        subprocess.run(["podman", "pod", "rm", "-f", "bench-raw"], check=True, capture_output=True)
    return {"start": [airpods, raw], "readiness": ready, "stop": [stop_a, stop_r]}


def scaling(env: Env, runs: int, counts: tuple[int, ...]) -> list[Series]:
    out = []
    for n in counts:
        series = Series(f"start {n} instance(s)")
        names = [f"bench{i}" for i in range(1, n + 1)]
        for _ in range(runs):
            env.run("stop", *names, "--remove")
            began = time.perf_counter()
            env.run("start", *names)
            series.samples.append(time.perf_counter() - began)
        out.append(series)
    return out

"""Start overhead vs a raw podman-CLI script, readiness latency, stop latency, scaling."""

from __future__ import annotations

import json
import subprocess
import sys
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
podman run -d --name bench-raw-0 --pod bench-raw -v {volume}:/models:ro $MOUNTS $HARDEN -e LLAMA_API_KEY=$key \
  --health-cmd "$HEALTH_CMD" --health-interval "$HEALTH_INTERVAL" --health-retries 3 \
  --health-start-period "$HEALTH_START" --health-on-failure restart {image} "$@" >/dev/null
# A 10 ms pause between probes: a loop with none steals a core from llama-server on 2 cores.
until curl -sf --connect-timeout 0.2 --max-time 1 -o /dev/null http://127.0.0.1:$port/health; do sleep 0.01; done
"""

# The same by podman-py in a Python process that does nothing else: the import, the pod, the
# container (what the raw script passes), start, and /health polled as airpods polls it. What is
# left between this and airpods is airpods' own work (click, config, specs, preflight, bookkeeping).
PODMAN_PY_START = """import http.client, json, os, sys, time
job = json.loads(sys.argv[1])
sys.modules["rich.progress"] = None  # as airpods loads podman-py (its pull progress bar is unused)
from podman import PodmanClient
del sys.modules["rich.progress"]
client = PodmanClient(base_url=job["url"], timeout=60)
client.pods.create("bench-py", portmappings=[{"host_ip": "127.0.0.1", "host_port": job["port"],
                   "container_port": 8080, "protocol": "tcp"}], networks={job["network"]: {"aliases": ["bench-py"]}},
                   netns={"nsmode": "bridge"})
container = client.containers.create(job["image"], name="bench-py-0", pod="bench-py", command=job["command"],
                                     environment={"LLAMA_API_KEY": job["key"]}, volumes=job["volumes"],
                                     healthcheck=job["health"], health_check_on_failure_action=3)
container.start()
delay = 0.01
while True:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", job["port"], timeout=1)
        conn.request("GET", "/health")
        if conn.getresponse().status == 200:
            break
    except OSError:
        pass
    time.sleep(delay)
    delay = min(delay * 1.6, 0.02)
os._exit(0)  # as airpods leaves: no interpreter teardown
"""


def _airpods_start(env: Env, port: int, *, poll: bool = False) -> tuple[float, float | None]:
    """Time `airpods start bench1`; with `poll`, also how long after /health first said 200 (seen by
    a 10 ms poller) airpods reported healthy. The poller costs CPU that the start would have (on 2
    cores: a thread of this process polling while the model loads), so timed starts run without it."""
    first_ok: list[float] = []
    done = threading.Event()

    def poll_health() -> None:
        while not done.is_set():
            if http_status(f"http://127.0.0.1:{port}/health", timeout=0.2) == 200:
                first_ok.append(time.perf_counter())
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll_health, daemon=True)
    if poll:
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
    if poll:
        poller.join(1)
    if code != 0:
        raise RuntimeError(f"airpods start failed with exit code {code}")
    latency = (reported - first_ok[0]) if reported and first_ok else None
    return total, latency


def strict_flags(security: dict) -> str:
    """The podman run flags of a service's least privilege (config render's `security`)."""
    flags = [f"--cap-drop={c.lower()}" for c in security["cap_drop"]]
    flags += [f"--cap-add={c.lower()}" for c in security["cap_add"]]
    flags += ["--security-opt=no-new-privileges"] if security["no_new_privileges"] else []
    flags += ["--read-only", "--read-only-tmpfs=false"] if security["read_only"] else []
    flags += [f"--tmpfs={path}:rw,size={size}" for path, size in security["tmpfs"].items()]
    return " ".join(flags + (["--init"] if security["init"] else []))


def start_overhead(env: Env, runs: int) -> dict:
    spec = env.render("bench1")
    port = spec["ports"][0]["host"]
    script = Path(tempfile.mkdtemp()) / "raw-start.sh"
    script.write_text(RAW_START.format(network=NETWORK, volume=VOLUME, image=LLAMA_IMAGE))
    raw_argv = ["bash", str(script), str(port), spec["env"]["LLAMA_API_KEY"], *spec["command"]]
    mounts = " ".join(f"-v {v['source']}:{v['target']}:{v['mode']}" for v in spec["volumes"]
                      if v["target"] != "/models")
    health = spec["health"]
    raw_env = {**env.env, "MOUNTS": mounts, "HEALTH_CMD": health["check"] or "true", "HARDEN": "",
               "HEALTH_INTERVAL": f"{health['interval'] or 30:g}s", "HEALTH_START": f"{health['start_period']:g}s"}
    strict_env = {**raw_env, "HARDEN": strict_flags(spec["security"])}  # what airpods gives it, by hand
    ns = lambda seconds: int(seconds * 1e9)  # noqa: E731
    from airpods.runtime.connect import resolve_url

    job = {"url": resolve_url(None, env.env)[0], "port": port, "network": NETWORK, "image": LLAMA_IMAGE,
           "key": spec["env"]["LLAMA_API_KEY"], "command": spec["command"],
           "volumes": {v["source"]: {"bind": v["target"], "mode": v["mode"]} for v in spec["volumes"]},
           "health": {"Test": ["CMD-SHELL", health["check"] or "true"], "Interval": ns(health["interval"] or 30),
                      "Retries": 3, "StartPeriod": ns(health["start_period"]), "Timeout": ns(30)}}
    py_argv = [sys.executable, "-c", PODMAN_PY_START, json.dumps(job)]
    airpods, raw, ready = Series("airpods start"), Series("raw podman script"), Series("readiness latency")
    by_py = Series("podman-py script")
    raw_strict = Series("raw podman script, least privilege flags")
    stop_a, stop_r = Series("airpods stop"), Series("podman pod stop")
    env.run("start", "bench1")  # network exists for both, image warm
    env.run("stop", "bench1", "--remove")
    for _ in range(runs):
        _, latency = _airpods_start(env, port, poll=True)
        if latency is not None:
            ready.samples.append(latency)
        env.run("stop", "bench1", "--remove")
        total, _ = _airpods_start(env, port)
        airpods.samples.append(total)
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

        began = time.perf_counter()  # the same script with the flags of airpods' least privilege
        subprocess.run(raw_argv, check=True, capture_output=True, env=strict_env, timeout=120)
        raw_strict.samples.append(time.perf_counter() - began)
        subprocess.run(["podman", "pod", "rm", "-f", "-t", "10", "bench-raw"], check=True, capture_output=True)

        began = time.perf_counter()
        subprocess.run(py_argv, check=True, capture_output=True, env=env.env, timeout=120)
        by_py.samples.append(time.perf_counter() - began)
        subprocess.run(["podman", "pod", "rm", "-f", "-t", "0", "bench-py"], check=True, capture_output=True)
    return {"start": [airpods, raw, by_py, raw_strict], "readiness": ready, "stop": [stop_a, stop_r]}


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

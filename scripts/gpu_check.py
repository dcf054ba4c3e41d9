"""The GPU plan on a real NVIDIA GPU, measured (run by scripts/gpu-check.sh; results as JSON):

1. a synthetic llama-shaped F16 model that fits the GPU, started through airpods: the plan's
   VRAM for it against what the llama-server process really uses (nvidia-smi), a chat answered,
   tokens/s in the container against the same binary on the host with the same flags;
2. the same model held to a share smaller than itself (`gpu.memory`): it must start, answer,
   and load the layer count the plan gave it ("offloaded N/M layers to GPU" in its log).

    gpu_check.py --image IMAGE --binary LLAMA_SERVER --tokenizer-from GGUF [--out FILE] [--cpu-dry-run]

--cpu-dry-run runs the same steps on a machine without a GPU (nothing is compared), to check the
script itself. Everything it creates is in the project "gpucheck" and removed at the end."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRPODS = [str(ROOT / ".venv" / "bin" / "airpods")] if (ROOT / ".venv" / "bin" / "airpods").exists() else ["airpods"]
SHAPE = ["--layers", "28", "--embd", "3072", "--ff", "8192", "--heads", "24", "--kv", "8"]  # ~5.8 GiB F16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*argv: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out


def config(image: str, model: str, port: int, share: str | None) -> str:
    held = f'gpu = {{ memory = "{share}" }}\n' if share else ""
    return f"""[runtime]
project = "gpucheck"
network = "airpods-gpucheck"
models_volume = "airpods_gpucheck_models"
[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
[services.gpucheck]
kind = "llamacpp"
images = {{ cpu = "{image}", cuda = "{image}" }}
ports = [{{ host = {port}, container = 8080 }}]
default_model = "{model}"
health = {{ path = "/health", timeout = 600 }}
memory_check = "warn"
{held}[services.gpucheck.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = 8192
no_webui = true
"""


def generate(url: str, key: str | None, n: int = 256) -> dict:
    body = json.dumps({"prompt": "The llama", "n_predict": n, "ignore_eos": True, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/completion", data=body, headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def vram_used() -> int | None:
    """MiB the compute processes use now (nvidia-smi), None without a GPU."""
    if not shutil.which("nvidia-smi"):
        return None
    out = sh("nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits", check=False)
    values = [int(v) for v in out.stdout.split() if v.isdigit()]
    return sum(values) if values else 0


def run_case(env: dict, conf: Path, share: str | None, image: str, model: str) -> dict:
    port = free_port()
    conf.write_text(config(image, model, port, share))
    render = json.loads(sh(*AIRPODS, "--config", str(conf), "config", "render", "gpucheck", "--json",
                           env=env).stdout)
    began = time.monotonic()
    sh(*AIRPODS, "--config", str(conf), "start", "gpucheck", "--force", env=env)
    ready = time.monotonic() - began
    key_file = Path(env["XDG_DATA_HOME"]) / "airpods" / "secrets" / "gpucheck-api-key"
    key = key_file.read_text().strip() if key_file.exists() else None
    answer = generate(f"http://127.0.0.1:{port}", key)
    used = vram_used()
    logs = sh(*AIRPODS, "--config", str(conf), "logs", "gpucheck", "-n", "0", env=env, check=False).stdout
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", logs)
    planned = sum(render.get("vram", {}).values()) >> 20
    result = {"share": share, "gpus": render["gpus"], "gpu_layers": render["gpu_layers"],
              "gpu_plan": render["gpu_plan"], "planned_vram_mib": planned, "used_vram_mib": used,
              "ratio_planned_to_used": round(planned / used, 3) if used else None,
              "offloaded": [int(offloaded.group(1)), int(offloaded.group(2))] if offloaded else None,
              "ready_seconds": round(ready, 1), "tokens_per_second": answer["timings"]["predicted_per_second"],
              "command": render["command"]}
    sh(*AIRPODS, "--config", str(conf), "stop", "gpucheck", "--remove", env=env, check=False)
    return result


def host_speed(binary: str, model_path: Path, command: list[str]) -> float:
    """The same binary on the host with the container's flags (model path and port swapped)."""
    port = free_port()
    argv = [binary, *command]
    for flag, value in (("--model", str(model_path)), ("--port", str(port)), ("--host", "127.0.0.1")):
        argv = argv[:argv.index(flag) + 1] + [value] + argv[argv.index(flag) + 2:] if flag in argv \
            else argv + [flag, value]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        return generate(f"http://127.0.0.1:{port}", None)["timings"]["predicted_per_second"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tokenizer-from", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    ap.add_argument("--cpu-dry-run", action="store_true")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="airpods-gpucheck-"))
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data"),
           "XDG_CACHE_HOME": str(work / "cache"), "NO_COLOR": "1"}
    if a.cpu_dry_run:
        env["AIRPODS_GPU"] = "cpu"
    shape = ["--layers", "2", "--embd", "576", "--ff", "1536", "--heads", "9", "--kv", "3"] if a.cpu_dry_run \
        else SHAPE
    model = work / "synthetic.gguf"
    sh(sys.executable, str(ROOT / "scripts" / "synthetic_gguf.py"), str(model), "--tokenizer-from",
       str(a.tokenizer_from), *shape)
    conf = work / "gpucheck.toml"
    conf.write_text(config(a.image, model.name, free_port(), None))
    sh(*AIRPODS, "--config", str(conf), "models", "import", str(model), env=env)
    report: dict = {"date": time.strftime("%Y-%m-%d"), "gpus": json.loads(sh(
        *AIRPODS, "--config", str(conf), "doctor", "--json", env=env, check=False).stdout or "{}").get("gpus"),
        "model_bytes": model.stat().st_size, "dry_run": a.cpu_dry_run}
    try:
        whole = run_case(env, conf, None, a.image, model.name)
        report["whole"] = whole
        report["host_tokens_per_second"] = host_speed(a.binary, model, whole["command"])
        report["container_to_host"] = round(whole["tokens_per_second"] / report["host_tokens_per_second"], 3)
        share = f"{max(1, int(model.stat().st_size / 2) >> 20)}m"  # half the weights
        report["held"] = run_case(env, conf, share, a.image, model.name)
    finally:
        sh(*AIRPODS, "--config", str(conf), "clean", "--volumes", "--yes", env=env, check=False)
        sh("podman", "volume", "rm", "airpods_gpucheck_models", check=False)  # this script's own
        sh("podman", "network", "rm", "airpods-gpucheck", check=False)
        shutil.rmtree(work, ignore_errors=True)
    a.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    held = report["held"]
    if not a.cpu_dry_run and (held["offloaded"] is None or held["offloaded"][0] != held["gpu_layers"]):
        print("FAILED: the held model did not load the planned layer count", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

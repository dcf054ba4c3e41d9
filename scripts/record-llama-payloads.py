"""Record what the real llama-server answers on /metrics and /slots, idle and while it generates,
into tests/data/ (the unit tests of `airpods top` parse these files). Uses the llama-server the
test image is built from (~/.cache/airpods/llama.cpp-*/bin) and the SmolLM2 test model.

    .venv/bin/python scripts/record-llama-payloads.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "record-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def main() -> None:
    cache = Path(os.environ.get("AIRPODS_BUILD_CACHE") or Path.home() / ".cache" / "airpods")
    binary = next(cache.glob("llama.cpp-*/bin/llama-server"))
    model = Path(subprocess.run(["bash", str(ROOT / "scripts" / "get-smollm2.sh")], capture_output=True, text=True,
                                check=True).stdout.strip().splitlines()[-1])
    port = free_port()
    server = subprocess.Popen([str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
                               "--metrics", "--ctx-size", "2048", "--parallel", "2", "--threads", "1",
                               "--no-webui"], env={**os.environ, "LLAMA_API_KEY": KEY},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = ROOT / "tests" / "data"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(port, "/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("llama-server did not start")
                time.sleep(0.1)
        body = json.dumps({"messages": [{"role": "user", "content": "Write a long story about a llama."}],
                           "max_tokens": 400, "ignore_eos": True}).encode()

        def chat() -> None:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers={
                "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=300).read()

        (out / "llama-metrics-idle.txt").write_bytes(get(port, "/metrics"))
        (out / "llama-slots-idle.json").write_bytes(get(port, "/slots"))
        worker = threading.Thread(target=chat)
        worker.start()
        time.sleep(1.5)
        (out / "llama-metrics-busy.txt").write_bytes(get(port, "/metrics"))
        (out / "llama-slots-busy.json").write_bytes(get(port, "/slots"))
        worker.join()
        (out / "llama-metrics-after.txt").write_bytes(get(port, "/metrics"))
    finally:
        server.terminate()
        server.wait(10)
    print(f"wrote {out}/llama-{{metrics,slots}}-*.{{txt,json}}")


if __name__ == "__main__":
    main()

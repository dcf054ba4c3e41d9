"""Do the speed predictions hold? Three synthetic llama models of different sizes (F16 weights,
SmolLM2's tokenizer: scripts/synthetic_gguf.py; their speed and memory are a real model's of that
shape), each benched by `airpods bench` on the real llama-server. Each model's generation speed
is then predicted from the bandwidth the *other two* achieved (plan/speed.py's calibration, the
model's own run left out) and compared with what it measured (goal: within ±25 %); its memory
estimate is compared with its container's peak (the page cache dropped first where root, so that
the weights are counted; the prompt fills most of the context, so that the KV cache is)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT, Env, Series
from benchmarks.memory import _drop_caches

# (name, layers, embd, ff, heads, kv heads): about 0.12, 0.41 and 1.06 GB of F16 weights
SHAPES = (("synthetic-s", 8, 576, 1536, 9, 3), ("synthetic-m", 12, 1024, 2816, 16, 4),
          ("synthetic-l", 16, 1536, 4096, 16, 4))
CTX, PROMPT, GEN = 1024, 768, 96


def _service(name: str, model: str, port: int) -> str:
    from tests.podman_env import LLAMA_IMAGE

    return f"""
[services.{name}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {port}, container = 8080 }}]
health = {{ path = "/health", timeout = 300 }}
default_model = "{model}"
[services.{name}.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = {CTX}
threads = 2
no_webui = true
"""


def predictions(env: Env, tokenizer: Path, repeat: int) -> tuple[list[list[str]], list[Series]]:
    """Rows (model, predicted, measured, ratio, within; estimate, peak, ratio, within) and series."""
    from airpods.bench.machine import samples
    from airpods.plan.speed import calibrate

    records = []
    for name, layers, embd, ff, heads, kv in SHAPES:
        path = env.tmp / f"{name}.gguf"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "synthetic_gguf.py"), str(path), "--tokenizer-from",
                        str(tokenizer), "--layers", str(layers), "--embd", str(embd), "--ff", str(ff), "--heads",
                        str(heads), "--kv", str(kv), "--ctx", "8192"], check=True, capture_output=True)
        env.run("models", "import", str(path), "--force")
        env.config.write_text(env.render_config(enabled=0) + _service("predict", path.name, env.ports[0]))
        env.run("stop", "--remove", "--timeout", "2", check=False)
        _drop_caches()  # the weights come from disk into this container's memory: counted in its peak
        done = env.run("bench", "predict", "--prompt-tokens", str(PROMPT), "--gen-tokens", str(GEN),
                       "--repeat", str(repeat), "--json")
        records.append(json.loads(done.stdout))
        path.unlink()
    env.config.write_text(env.render_config())
    rows, series = [], []
    for r in records:
        machine = calibrate(samples(records), None, exclude=r["model"])
        predicted = machine.bandwidth / (r["weights"] + r["kv_bytes"])
        ratio = r["generation_tokens_per_s"] / predicted
        memory = r["estimate_bytes"] / r["memory_bytes"] if r["memory_bytes"] else None
        measured = r["generation_tokens_per_s"]
        rows.append([r["model"], f"{r['weights'] / 1e9:.2f} GB", f"{predicted:.1f}", f"{measured:.1f}", f"{ratio:.2f}",
                     "yes" if 0.75 <= ratio <= 1.25 else "**no**",
                     f"{r['estimate_bytes'] / 2**20:.0f} MiB",
                     f"{r['memory_bytes'] / 2**20:.0f} MiB" if r["memory_bytes"] else "-",
                     f"{memory:.2f}" if memory else "-",
                     ("yes" if 0.85 <= memory <= 1.15 else "**no**") if memory else "-"])
        series.append(Series(f"measured / predicted generation tokens/s: {r['model']}", [ratio]))
    return rows, series

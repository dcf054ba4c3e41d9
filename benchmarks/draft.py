"""Does a draft model speed up generation here? `airpods bench` of one target with and without
`draft_model`, rounds interleaved, on the real llama-server (CPU):

- "synthetic": a 1.06 GB F16 target drafted by a 0.12 GB one (scripts/synthetic_gguf.py, SmolLM2's
  tokenizer). Their weights are all zero, so every token is equally likely: the target samples at
  random and rejects nearly every draft. What drafting costs when it is never right.
- "SmolLM2 for itself": a real pair of one vocabulary, the draft the target's copy, so every
  draft is accepted, but drafting a token costs as much as generating it. What the mechanism's
  own overhead is when nothing can be saved.

Neither is the case drafting is for (a large target, a small draft of its family that is often
right): no such pair is on this machine.

Generation tokens/s with the draft over without it, and the acceptance rate llama-server reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import MODEL, ROOT, Env, Series

TARGET = ("draft-target", 16, 1536, 4096, 16, 4)  # name, layers, embd, ff, heads, kv heads
DRAFT = ("draft-small", 8, 576, 1536, 9, 3)
PROMPT, GEN = 64, 96


def _service(model: str, port: int, draft: str | None) -> str:
    from tests.podman_env import LLAMA_IMAGE

    return f"""
[services.spec]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["spec"]
ports = [{{ host = {port}, container = 8080 }}]
health = {{ path = "/health", timeout = 300 }}
default_model = "{model}"
{f'draft_model = "{draft}"' if draft else ""}
[services.spec.command_args]
model = "/models/{{{{ default_model }}}}"
ctx_size = 1024
threads = 2
no_webui = true
"""


def _synthetic(env: Env, tokenizer: Path, shape: tuple) -> str:
    name, layers, embd, ff, heads, kv = shape
    path = env.tmp / f"{name}.gguf"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "synthetic_gguf.py"), str(path), "--tokenizer-from",
                    str(tokenizer), "--layers", str(layers), "--embd", str(embd), "--ff", str(ff), "--heads",
                    str(heads), "--kv", str(kv), "--ctx", "8192"], check=True, capture_output=True)
    env.run("models", "import", str(path), "--force")
    path.unlink()
    return path.name


def _bench(env: Env, target: str, draft: str | None) -> dict:
    env.config.write_text(env.render_config(enabled=0) + _service(target, env.ports[0], draft))
    env.run("stop", "--remove", "--timeout", "2", check=False)
    done = env.run("bench", "spec", "--prompt-tokens", str(PROMPT), "--gen-tokens", str(GEN), "--repeat", "2",
                   "--json")
    return json.loads(done.stdout)


def draft_speed(env: Env, tokenizer: Path, rounds: int) -> tuple[list[list[str]], list[Series]]:
    """Rows (pair, without, with, ratio, acceptance) and the series behind them."""
    env.run("models", "import", str(tokenizer), "--name", "SmolLM2-draft.Q4_1.gguf", "--force")
    pairs = [("synthetic 1.06 GB drafted by 0.12 GB", _synthetic(env, tokenizer, TARGET),
              _synthetic(env, tokenizer, DRAFT)),
             ("SmolLM2 drafted by itself", MODEL, "SmolLM2-draft.Q4_1.gguf")]
    rows, series = [], []
    try:
        for label, target, draft in pairs:
            plain, spec, accepted = Series(f"{label}: without"), Series(f"{label}: with draft"), []
            for _ in range(rounds):
                plain.samples.append(_bench(env, target, None)["generation_tokens_per_s"])
                r = _bench(env, target, draft)
                spec.samples.append(r["generation_tokens_per_s"])
                if r.get("draft_acceptance") is not None:
                    accepted.append(r["draft_acceptance"])
            rate = f"{100 * sum(accepted) / len(accepted):.0f} %" if accepted else "-"
            rows.append([label, f"{plain.median:.1f}", f"{spec.median:.1f}", f"{spec.median / plain.median:.2f}",
                         rate])
            series += [plain, spec]
    finally:
        env.run("stop", "--remove", "--timeout", "2", check=False)
        env.config.write_text(env.render_config())
    return rows, series

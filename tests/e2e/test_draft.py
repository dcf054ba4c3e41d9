"""Speculative decoding with the real llama-server: SmolLM2 drafting for a copy of itself (one
vocabulary), started through airpods with `draft_model`; the estimate counts both models and the
container's peak memory is within 15 % of it; the answer arrives through the official `openai`
client with llama-server's draft counts, and `top` shows the acceptance rate. A draft of another
vocabulary is refused before anything is created."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.builders import api_key
from tests.gguf_builder import llama_like, write_gguf
from tests.podman_env import llama_table, podman

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL, DRAFT = "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-draft.Q4_1.gguf"


def _evict(volume: str, *files: str) -> None:
    """Drop these files' pages from the page cache (the import read them), so that the container's
    reads are charged to its own cgroup, as on a machine where no one read the model before."""
    root = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
    for name in files:
        fd = os.open(root / name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _peak(container: str) -> int:
    path = podman("inspect", "--format", "{{.State.CgroupPath}}", container).stdout.strip().lstrip("/")
    for candidate in (Path("/sys/fs/cgroup") / path / "memory.peak",
                      Path("/sys/fs/cgroup/memory") / path / "memory.max_usage_in_bytes"):
        if candidate.is_file():
            return int(candidate.read_text())
    raise AssertionError(f"no cgroup memory peak for {container} under /sys/fs/cgroup/{path}")


def test_a_draft_is_counted_loaded_and_drafts(prun, cli, write_config, smollm2, isolated):
    from openai import OpenAI

    name = prun.name("draft")
    base = write_config(prun.header())
    for file in (MODEL, DRAFT):
        assert cli("--config", base, "models", "import", str(smollm2), "--name", file).code == 0
    path = write_config(prun.header() + llama_table(name, MODEL, ctx=1024, draft_model=DRAFT) + "parallel = 1\n")
    _evict(prun.models_volume, MODEL, DRAFT)
    started = cli("--config", path, "start", name)
    assert started.code == 0, started.text
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    assert row["health"] == "healthy"
    labels = json.loads(podman("inspect", "--format", "{{json .Config.Labels}}", row["container"]).stdout)
    estimate = int(labels["io.airpods.memory-estimate"])
    command = json.loads(cli("--config", path, "config", "render", name, "--json").out)["command"]
    assert command[command.index("--model-draft") + 1] == f"/models/{DRAFT}"
    assert estimate > 2 * smollm2.stat().st_size  # both models' weights, their caches and buffers

    client = OpenAI(base_url=row["url"], api_key=api_key(isolated, name), timeout=120, max_retries=0)
    answer = client.chat.completions.create(
        model=MODEL.removesuffix(".gguf"), max_tokens=64, temperature=0,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}])
    assert (answer.choices[0].message.content or "").strip()
    timings = (answer.model_extra or {}).get("timings") or {}
    assert timings.get("draft_n", 0) > 0, timings  # llama-server drafted with it
    assert 0 <= timings["draft_n_accepted"] <= timings["draft_n"]

    peak = _peak(row["container"])
    ratio = estimate / peak
    print(f"estimate {estimate / 2**20:.1f} MiB, container peak {peak / 2**20:.1f} MiB ({ratio:.2f}x); "
          f"drafted {timings['draft_n']}, accepted {timings['draft_n_accepted']}")
    assert 0.85 <= ratio <= 1.15, (estimate, peak)

    top = json.loads(cli("--config", path, "top", name, "--json", "--interval", "0.2").out)
    [llama] = [r for r in top if r["service"] == name]
    assert llama["draft_acceptance"] == pytest.approx(timings["draft_n_accepted"] / timings["draft_n"], abs=0.01)
    shown = cli("--config", path, "top", name, "--once", "--interval", "0.2")
    assert "of its draft model's tokens" in shown.text, shown.text


def test_a_draft_of_another_vocabulary_is_refused_before_anything_is_created(prun, cli, write_config, smollm2,
                                                                               tmp_path):
    name = prun.name("baddraft")
    base = write_config(prun.header())
    assert cli("--config", base, "models", "import", str(smollm2)).code == 0
    kv = {**llama_like("llama", 2, 64, 4, 2, 256, 300, 2048), "tokenizer.ggml.model": "llama",
          "tokenizer.ggml.tokens": [f"t{i}" for i in range(300)]}
    other = write_gguf(tmp_path / "other-vocab.gguf", kv, [("token_embd.weight", 1, [64, 300])])
    assert cli("--config", base, "models", "import", str(other)).code == 0
    path = write_config(prun.header() + llama_table(name, MODEL, draft_model="other-vocab.gguf"))
    refused = cli("--config", path, "start", name)
    assert refused.code == 2, refused.text
    assert f"draft model other-vocab.gguf cannot draft for {MODEL}" in refused.err
    assert "tokenizers differ" in refused.err
    assert "Traceback" not in refused.err
    label = f"label=io.airpods.test={prun.id}"
    assert podman("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert podman("pod", "ps", "-q", "--filter", label).stdout.strip() == ""


def test_run_with_a_draft_answers_and_the_draft_is_loaded(prun, cli, write_config, smollm2):
    name = prun.name("rundraft")
    base = write_config(prun.header())
    for file in (MODEL, DRAFT):
        assert cli("--config", base, "models", "import", str(smollm2), "--name", file).code == 0
    path = write_config(prun.header() + llama_table(name, MODEL, ctx=1024))
    done = cli("--config", path, "run", MODEL, "--draft", DRAFT, "--service", name, "Say hi in three words.")
    assert done.code == 0 and done.out.strip(), done.text
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    argv = json.loads(podman("inspect", "--format", "{{json .Config.Cmd}}", row["container"]).stdout)
    assert argv[argv.index("--model-draft") + 1] == f"/models/{DRAFT}"  # run's draft, in memory only
    logs = podman("logs", row["container"]).stderr + podman("logs", row["container"]).stdout
    assert "draft" in logs.lower() and DRAFT in logs, logs[-1500:]  # llama-server loaded it
    assert "draft_model" not in Path(path).read_text()  # the config file is not changed

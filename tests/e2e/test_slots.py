"""What runs is what airpods planned: the slots (issue 40, item 9), with a real llama-server and
the official `openai` client. Unsaid, this llama-server ran 4 slots sharing one unified cache of
--ctx-size cells while airpods counted one slot of that size: two prompts of ~2,060 tokens, each
of which fits alone, both failed with HTTP 500 "Context size has been exceeded"."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import OpenAI

from tests.e2e.builders import api_key
from tests.podman_env import llama_table

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_two_long_prompts_at_once_are_both_answered_and_the_slots_are_the_plan(prun, cli, write_config, smollm2,
                                                                                 isolated):
    name = prun.name("slots")
    path = write_config(prun.header() + llama_table(name, MODEL, ctx=4096))
    assert cli("--config", path, "models", "import", str(smollm2), "--name", MODEL).code == 0
    assert cli("--config", path, "start", name).code == 0, "start failed"
    [row] = json.loads(cli("--config", path, "status", name, "--json").out)
    key = api_key(isolated, name)
    client = OpenAI(base_url=row["url"], api_key=key, timeout=300, max_retries=0)
    base = row["url"].removesuffix("/v1")
    text = " ".join(f"item{i % 97}" for i in range(700))  # ~2,050 tokens with the chat template
    count = json.loads(urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - our own published port
        f"{base}/tokenize", data=json.dumps({"content": text}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})).read())
    assert 1900 <= len(count["tokens"]) <= 2300, len(count["tokens"])

    def ask(i: int) -> str:
        answer = client.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, messages=[
            {"role": "user", "content": f"Question {i}. Repeat the first word: {text}"}])
        return answer.choices[0].finish_reason or ""

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(ask, [1, 2]))
    assert all(r in ("stop", "length") for r in results), results
    req = urllib.request.Request(f"{base}/slots", headers={"Authorization": f"Bearer {key}"})
    slots = json.loads(urllib.request.urlopen(req).read())  # noqa: S310 - our own published port
    assert [s["n_ctx"] for s in slots] == [4096]  # one slot of the planned context, as the estimate counts
    fit = json.loads(cli("--config", path, "models", "fit", MODEL, "--service", name, "--json").out)
    assert fit["ctx"] == 4096 and fit["parallel"] == 1, fit

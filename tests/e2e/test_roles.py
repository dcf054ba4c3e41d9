"""Models with a role on the real llama-server: a reranker (a small synthetic model of llama.cpp's
qwen3 reranking architecture, scripts/synthetic_gguf.py --reranker) beside a chat and an embedding
model in one router. Its /v1/rerank answers through the HTTPS gateway with a person's key, one
score per document, and `keys usage` counts it; the real Open WebUI gets the embedding model and
the reranker wired (its retrieval config API shows both) and embeds a document uploaded in headless
Chromium through airpods' endpoint."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.builders import FILES, call, chromium, gateway_table, router, upload, webui_models, webui_table
from tests.podman_env import free_port

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp]  # the Open WebUI test needs its image and Chromium
ROOT = Path(__file__).resolve().parents[2]
RANKER = "ranker-qwen3-tiny.gguf"
DOCS = ["Llamas are camelids of the Andes.", "Paris is the capital of France.", "hello"]


def stack(prun, cli, write_config, smollm2, tmp_path, extra: str = "", keep: tuple[str, ...] = ()) -> str:
    path = tmp_path / RANKER
    subprocess.run([sys.executable, str(ROOT / "scripts" / "synthetic_gguf.py"), str(path), "--tokenizer-from",
                    str(smollm2), "--reranker", "--layers", "2", "--embd", "64", "--ff", "128", "--heads", "4",
                    "--kv", "2", "--ctx", "2048"], check=True, capture_output=True)
    base = write_config(prun.header())
    assert cli("--config", base, "models", "import", str(path)).code == 0
    for name in FILES:
        assert cli("--config", base, "models", "import", str(smollm2), "--name", name).code == 0
    text = prun.header(keep=keep) + router(f"rt-{prun.id}", max_loaded=2) + f"""
[services.rt-{prun.id}.models.rank]
file = "{RANKER}"
role = "rerank"
""" + extra
    return write_config(text)


def test_a_reranker_answers_through_the_gateway_with_a_persons_key(prun, cli, write_config, smollm2, tmp_path,
                                                                   isolated):
    port = free_port()
    path = stack(prun, cli, write_config, smollm2, tmp_path, gateway_table(prun.id, port))
    preset = json.loads(cli("--config", path, "config", "render", f"rt-{prun.id}", "--json").out)["router_preset"]
    assert "[rank]" in preset and "reranking = true" in preset.split("[rank]")[1]
    started = cli("--config", path, "start", "gateway")
    assert started.code == 0, started.text
    ca = tmp_path / "ca.pem"
    assert cli("--config", path, "keys", "ca", "-o", str(ca)).code == 0
    alice = cli("--config", path, "keys", "add", "alice").out.strip()
    context = ssl.create_default_context(cafile=str(ca))

    def rerank() -> tuple[int, dict]:
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/rerank", method="POST",
                                     data=json.dumps({"model": "rank", "query": "What is a llama?",
                                                      "documents": DOCS}).encode(),
                                     headers={"Authorization": f"Bearer {alice}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120, context=context) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    deadline = time.monotonic() + 30  # Caddy reads the new key within a second or two
    status, answer = rerank()
    while status == 401 and time.monotonic() < deadline:
        time.sleep(0.3)
        status, answer = rerank()
    assert status == 200, (status, answer)
    scores = {r["index"]: r["relevance_score"] for r in answer["results"]}
    assert sorted(scores) == [0, 1, 2] and len(set(scores.values())) == 3, answer  # one score per document
    rows = json.loads(cli("--config", path, "keys", "usage", "--json").out)
    assert any(r["person"] == "alice" and r["model"] == "rank" and r["requests"] >= 1 for r in rows), rows
    ps = json.loads(cli("--config", path, "models", "ps", "--json").out)
    assert {r["id"]: r["role"] for r in ps}["rank"] == "rerank"


@pytest.mark.openwebui
def test_open_webui_gets_the_embedder_and_the_reranker_and_embeds_a_document(prun, images, cli, write_config,
                                                                              smollm2, tmp_path):
    rid, port = prun.id, free_port()
    base = f"http://127.0.0.1:{port}"
    path = stack(prun, cli, write_config, smollm2, tmp_path, webui_table(rid, port), keep=("open-webui",))
    started = cli("--config", path, "start", "open-webui")
    assert started.code == 0, started.text
    [row] = json.loads(cli("--config", path, "status", "open-webui", "--json").out)
    assert f"rt-{rid}" in row["wired_to"], row
    token, _ = webui_models(base)
    config = call(f"{base}/api/v1/retrieval/config", token)
    assert config["RAG_RERANKING_ENGINE"] == "external" and config["RAG_RERANKING_MODEL"] == "rank", config
    assert config["RAG_EXTERNAL_RERANKER_URL"] == f"http://rt-{rid}:8080/v1/rerank"
    assert config["ENABLE_RAG_HYBRID_SEARCH"] is True
    embedding = call(f"{base}/api/v1/retrieval/embedding", token)
    assert embedding["RAG_EMBEDDING_ENGINE"] == "openai" and embedding["RAG_EMBEDDING_MODEL"] == "embed", embedding

    doc = tmp_path / "alpacas.txt"
    doc.write_text("Alpacas are domesticated South American camelids, smaller than llamas. " * 20)
    driver = chromium()
    try:  # as a person does it: the chat page's file button (its hidden input), in headless Chromium
        driver.get(f"{base}/")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not driver.find_elements("css selector", "input[type=file][multiple]"):
            time.sleep(0.3)
        pickers = driver.find_elements("css selector", "input[type=file][multiple]")
        assert pickers, (driver.current_url, driver.find_element("tag name", "body").text[:800],
                         [e.get_attribute("outerHTML")[:200] for e in driver.find_elements("css selector",
                                                                                          "input")][:10])
        [picker] = pickers
        driver.execute_script("arguments[0].hidden = false;", picker)
        picker.send_keys(str(doc))
        deadline, status, file_id = time.monotonic() + 180, "pending", None
        while time.monotonic() < deadline and status not in ("completed", "failed"):
            time.sleep(0.5)
            files = call(f"{base}/api/v1/files/", token)
            file_id = next((f["id"] for f in (files if isinstance(files, list) else files.get("items", []))
                            if f.get("filename") == doc.name), None)
            if file_id:
                status = call(f"{base}/api/v1/files/{file_id}/process/status", token).get("status", "pending")
        assert file_id and status == "completed", (file_id, status, driver.find_element("tag name", "body").text[:600])
    finally:
        driver.quit()
    logs = cli("--config", path, "logs", f"rt-{rid}", "-n", "0").out
    assert "proxying request to model embed" in logs, logs[-2000:]  # embedded through airpods' endpoint

    file_id = upload(base, token, "llamas.txt", "Llamas are domesticated South American camelids. " * 20)
    deadline, status = time.monotonic() + 180, "pending"
    while time.monotonic() < deadline and status not in ("completed", "failed"):
        status = call(f"{base}/api/v1/files/{file_id}/process/status", token).get("status", "pending")
        time.sleep(0.5)
    assert status == "completed", status  # and through its API


def test_run_of_a_reranker_says_how_to_call_it_instead_of_a_chat(prun, cli, write_config, smollm2, tmp_path):
    from tests.podman_env import llama_table

    stack(prun, cli, write_config, smollm2, tmp_path)  # the reranker in the volume
    name = prun.name("rank")
    path = write_config(prun.header() + llama_table(name, RANKER, role="rerank"))
    done = cli("--config", path, "run", RANKER, "--service", name)
    assert done.code == 0, done.text
    assert f"{RANKER} serves reranking, not chat: POST http://127.0.0.1:" in done.err and "/v1/rerank" in done.err
    assert done.out == ""  # no chat opened, no answer

"""What the stack's model servers offer the services wired to them (Open WebUI, the gateway): every
enabled llama.cpp /v1 with its key, the first Ollama, and a router's embedding model. Pure."""

from __future__ import annotations

from typing import Any

from airpods.kinds import kind_of


def backends(facts: dict[str, Any]) -> dict[str, Any]:
    """What Open WebUI is wired to: every enabled llama.cpp /v1 and the first Ollama."""
    openai, ollama = [], []
    for f in facts.values():
        if not f.svc.enabled or not f.ports:
            continue
        base = f"http://{f.aliases[0]}:{f.ports[0].container}"
        if kind_of(f.svc.kind).llama_server:
            openai.append({"name": f.name, "url": f"{base}/v1", "api_key": f.api_key or "none"})
        elif kind_of(f.svc.kind).ollama_api:
            ollama.append({"name": f.name, "url": base})
    embedding = next(({"url": f"http://{f.aliases[0]}:{f.ports[0].container}/v1", "api_key": f.api_key or "none",
                       "model": mid} for f in facts.values() if f.svc.enabled and f.ports
                      and kind_of(f.svc.kind).llama_server and f.svc.mode == "router" and isinstance(f.svc.models, dict)
                      for mid, m in f.svc.models.items() if m.embeddings), None)
    return {"openai": openai, "ollama": ollama[0]["url"] if ollama else "", "embedding": embedding,
            "ollama_services": ollama, "names": [b["name"] for b in openai + ollama]}

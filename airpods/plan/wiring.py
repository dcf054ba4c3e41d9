"""What the stack's model servers offer the services wired to them (Open WebUI, the gateway): every
enabled llama.cpp /v1 with its key (or, with a hub, the hub's one /v1 for all of them and the other
hosts' models), the first Ollama, and a router's embedding model. Pure."""

from __future__ import annotations

from typing import Any

from airpods.kinds import kind_of


def backends(facts: dict[str, Any]) -> dict[str, Any]:
    """What Open WebUI is wired to: every enabled llama.cpp /v1 and the first Ollama. With an
    enabled hub, its /v1 stands for every llama.cpp service (each is a member of it) and adds
    every host's models: Open WebUI lists the union and each chat goes where its model is."""
    from airpods.kinds.hub import PORT as HUB_PORT

    openai, ollama = [], []
    hub = next((f for f in facts.values() if f.svc.enabled and kind_of(f.svc.kind).model_router), None)
    if hub is not None:  # the hub holds the members' keys and sets each one's itself
        openai.append({"name": hub.name, "url": f"http://{hub.aliases[0]}:{HUB_PORT}/v1", "api_key": "none"})
    for f in facts.values():
        if not f.svc.enabled or not f.ports:
            continue
        base = f"http://{f.aliases[0]}:{f.ports[0].container}"
        if kind_of(f.svc.kind).llama_server and hub is None:
            openai.append({"name": f.name, "url": f"{base}/v1", "api_key": f.api_key or "none"})
        elif kind_of(f.svc.kind).ollama_api:
            ollama.append({"name": f.name, "url": base})
    embedding = next(({"url": f"http://{f.aliases[0]}:{f.ports[0].container}/v1", "api_key": f.api_key or "none",
                       "model": mid} for f in facts.values() if f.svc.enabled and f.ports
                      and kind_of(f.svc.kind).llama_server and f.svc.mode == "router" and isinstance(f.svc.models, dict)
                      for mid, m in f.svc.models.items() if m.served_role == "embed"), None)
    return {"openai": openai, "ollama": ollama[0]["url"] if ollama else "", "embedding": embedding,
            "ollama_services": ollama, "names": [b["name"] for b in openai + ollama]}

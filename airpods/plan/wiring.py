"""What the stack's model servers offer the services wired to them (Open WebUI, the gateway): every
enabled llama.cpp /v1 with its key (or, with a hub, the hub's one /v1 for all of them and the other
hosts' models), the first Ollama, and the first embedding model and reranker. Pure."""

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
        chat = f.svc.mode == "router" or f.svc.role in (None, "chat")  # an embedder or a reranker is no chat model
        if kind_of(f.svc.kind).llama_server and hub is None and chat:
            openai.append({"name": f.name, "url": f"{base}/v1", "api_key": f.api_key or "none"})
        elif kind_of(f.svc.kind).ollama_api:
            ollama.append({"name": f.name, "url": base})
    (emb_by, embedding), (rank_by, reranker) = served_by(facts, "embed"), served_by(facts, "rerank")
    names = [b["name"] for b in openai + ollama]
    out = {"openai": openai, "ollama": ollama[0]["url"] if ollama else "", "embedding": embedding,
           "ollama_services": ollama, "names": names + [n for n in (emb_by, rank_by) if n and n not in names]}
    if reranker:  # a key only when there is one: the config hash of a stack without stays as it was
        out["reranker"] = {**reranker, "url": reranker["url"] + "/rerank"}
    return out


def served_by(facts: dict[str, Any], role: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the service, its /v1 inside the network with key and model id) of the first enabled
    llama.cpp service that serves `role`: a router's model, or a single-model service with it."""
    for f in facts.values():
        if not (f.svc.enabled and f.ports and kind_of(f.svc.kind).llama_server):
            continue
        base = {"url": f"http://{f.aliases[0]}:{f.ports[0].container}/v1", "api_key": f.api_key or "none"}
        if f.svc.mode == "router" and isinstance(f.svc.models, dict):
            mid = next((mid for mid, m in f.svc.models.items() if m.served_role == role), None)
            if mid is not None:
                return f.name, {**base, "model": mid}
        elif f.svc.mode != "router" and f.svc.role == role:
            return f.name, {**base, "model": (f.svc.default_model or f.name).removesuffix(".gguf")}
    return None, None


def rag_env(wiring: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """Open WebUI's document search, as its own settings name it (its config.py): embeddings from
    the stack's embedding model; reranking by its reranker as Open WebUI's "external" engine, with
    hybrid search on (where Open WebUI uses a reranker). (env, the names of its secret values)."""
    env: dict[str, str] = {}
    secret: set[str] = set()
    if emb := wiring.get("embedding"):
        env.update({"RAG_EMBEDDING_ENGINE": "openai", "RAG_OPENAI_API_BASE_URL": emb["url"],
                    "RAG_OPENAI_API_KEY": emb["api_key"], "RAG_EMBEDDING_MODEL": emb["model"]})
        secret.add("RAG_OPENAI_API_KEY")
    if rank := wiring.get("reranker"):
        env.update({"RAG_RERANKING_ENGINE": "external", "RAG_EXTERNAL_RERANKER_URL": rank["url"],
                    "RAG_EXTERNAL_RERANKER_API_KEY": rank["api_key"], "RAG_RERANKING_MODEL": rank["model"],
                    "ENABLE_RAG_HYBRID_SEARCH": "true"})
        secret.add("RAG_EXTERNAL_RERANKER_API_KEY")
    return env, secret

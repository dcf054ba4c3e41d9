"""Models with a role (pure): what a llama.cpp model serves — chat (the default), embeddings or
reranking — and the draft model that speeds up a chat model's generation (speculative decoding).

Both are said to llama-server in its own words, so that the spec carries them in its argv (a
single-model service) or in the preset's model section (a router model), and every view reads
them back from there:

    role = "embed"    --embeddings --pooling mean   (/v1/embeddings; the user's pooling wins)
    role = "rerank"   --reranking                   (/v1/rerank; llama.cpp sets rank pooling)
    draft_model = F   --model-draft /models/F --spec-type draft-simple

llama-server infers no speculative type for a plain draft GGUF (only for MTP heads), so
`--spec-type draft-simple` is said unless the user chose a type."""

from __future__ import annotations

from typing import Any

from airpods.plan.argv import flag_name
from airpods.plan.memory import in_volume

ROLE_FLAGS = {"embed": ("--embeddings", "--embedding"), "rerank": ("--reranking", "--rerank")}
DRAFT_FLAGS = ("--model-draft", "-md", "--spec-draft-model")
# What each role answers, for `run` and `models ps` (OpenAI-compatible paths of llama-server).
ENDPOINTS = {"chat": "/v1/chat/completions", "embed": "/v1/embeddings", "rerank": "/v1/rerank"}


def role_args(role: str | None, draft: str | None, given: set[str]) -> dict[str, Any]:
    """The command_args a role and a draft add, leaving out what the user's own flags say
    (`given`: the flags already there, as --long-names)."""
    out: dict[str, Any] = {}
    if role == "embed" and not given & set(ROLE_FLAGS["embed"]):
        out["embeddings"] = True
        if "--pooling" not in given:
            out["pooling"] = "mean"  # llama-server's "none" is not OpenAI-compatible
    if role == "rerank" and not given & set(ROLE_FLAGS["rerank"]):
        out["reranking"] = True
    if draft and not given & set(DRAFT_FLAGS):
        out["model_draft"] = f"/models/{draft}"
        if "--spec-type" not in given:
            out["spec_type"] = "draft-simple"
    return out


def flags_of(args: dict[str, Any] | tuple[tuple[str, Any], ...] | list[str] | tuple[str, ...]) -> set[str]:
    """The flags that command_args (a dict or pairs) or an argv set."""
    if isinstance(args, dict):
        return {flag_name(k) for k, v in args.items() if v is not False and v is not None}
    items = list(args)
    if items and isinstance(items[0], tuple):
        return {flag_name(k) for k, v in items if v is not False and v is not None}
    return {str(a).split("=", 1)[0] for a in items if str(a).startswith("-")}


def role_of(flags: set[str], embeddings: bool = False) -> str:
    """The role an argv (or a router model's section) serves."""
    if flags & set(ROLE_FLAGS["rerank"]):
        return "rerank"
    if embeddings or flags & set(ROLE_FLAGS["embed"]):
        return "embed"
    return "chat"


def draft_of(pairs: dict[str, Any] | tuple[tuple[str, Any], ...]) -> str | None:
    """The draft file in the model volume a router model's section names (None: none, or a path
    outside /models, as LlamaRun.draft_in_volume reads a single service's)."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return in_volume(next((str(v) for k, v in items if flag_name(k) in DRAFT_FLAGS and v), None))

"""The hub's model search (GET /api/models, the GGUF repos only) and what `models search` needs of
each repo found: its quantizations (the tree listing) and one header (ranged reads), from which the
facts of every quantization follow (they share the architecture; each has its own weights: its
files' size). Facts read once are kept in the facts cache, keyed by the file and its size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airpods.errors import AirpodsError, RuntimeFailure
from airpods.models import hub_http

SORTS = {"downloads": "downloads", "likes": "likes", "trending": "trendingScore", "recent": "lastModified"}


def search(query: str, *, sort: str, limit: int, endpoint: str, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """The hub's GGUF repos matching `query`, best first by `sort` (a key of SORTS)."""
    import requests

    params = {"search": query, "filter": "gguf", "sort": SORTS[sort], "direction": "-1", "limit": str(limit)}
    try:
        resp = requests.get(f"{endpoint}/api/models", params=params, headers=hub_http.headers(environ), timeout=30)
    except requests.RequestException as exc:
        raise RuntimeFailure(f"searching {endpoint} failed: {hub_http.describe(exc, environ)}",
                             hint="check the network, or set HF_ENDPOINT for a mirror") from exc
    if resp.status_code >= 400:
        raise RuntimeFailure(f"searching {endpoint}: HTTP {resp.status_code}")
    try:
        found = resp.json()
    except ValueError as exc:
        raise RuntimeFailure(f"searching {endpoint}: the answer is not JSON") from exc
    return [r for r in found if isinstance(r, dict) and isinstance(r.get("id"), str)][:limit] \
        if isinstance(found, list) else []


@dataclass
class Repo:
    """One repo found, with its quantizations and the facts of one header (or why not)."""

    repo: str
    downloads: int = 0
    likes: int = 0
    groups: list = field(default_factory=list)
    vision: bool = False
    facts: Any = None  # ModelFacts of the header read, its weights those of the file read
    read_from: Any = None  # the group whose (first) file's header was read
    share: float = 1.0  # of that file's bytes, the weights' (the rest is its header)
    error: str | None = None
    fresh: bool = False  # its facts were read now (the caller keeps them in the cache)

    def facts_of(self, group: Any) -> Any:
        """The facts of any of its quantizations: the same architecture, its own weights (its
        files' size, less the header's share, as in the file that was read)."""
        return replace(self.facts, weights=int(group.size * self.share))


def look(found: dict[str, Any], endpoint: str, environ: Mapping[str, str], kept: Any = None,
         counter: list[int] | None = None) -> Repo:
    """A repo's quantizations and one header's facts; what went wrong is kept on it, never raised.
    `kept` (the facts cache) is only read here: `cache_key` names where to put what was read."""
    from airpods.models.gguf import GGUFError
    from airpods.models.hub_repo import groups, list_files, read_remote_header
    from airpods.plan.memory import facts_from_header

    r = Repo(found["id"], int(found.get("downloads") or 0), int(found.get("likes") or 0))
    try:
        r.groups, projectors = groups(list_files(r.repo, "main", endpoint, environ))
    except AirpodsError as exc:
        r.error = exc.message
        return r
    r.vision = bool(projectors)
    if not r.groups:
        r.error = "no GGUF model file in it"
        return r
    r.read_from = min(r.groups, key=lambda g: g.size)
    first = r.read_from.files[0]
    r.facts = kept.get(cache_key(endpoint, r.repo, first.path), 0, first.size) if kept is not None else None
    if r.facts is None:
        try:
            header = read_remote_header(r.repo, first.path, "main", endpoint, environ, counter)
            r.facts = facts_from_header(header.kv, header.tensor_bytes or first.size)
        except (AirpodsError, GGUFError) as exc:
            r.error = f"its header ({first.path}) cannot be read: {getattr(exc, 'message', None) or exc}"
            return r
        r.fresh = True
    r.share = min(1.0, r.facts.weights / max(1, first.size))
    return r


def cache_key(endpoint: str, repo: str, path: str) -> str:
    """Where a remote file's facts are kept in the facts cache (with its size as the stamp)."""
    return f"{endpoint}/{repo}/{path}"

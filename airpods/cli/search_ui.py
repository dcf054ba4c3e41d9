"""What `models search` shows of each repo: every quantization's fit and predicted speed here, the
best that fits, and the line that runs it (the facts from models/hub_search.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from airpods.cli.application import Application


def search_repos(app: Application, query: str, *, sort: str, limit: int, service: str | None) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    from airpods.bench.machine import figures
    from airpods.models import hub_http
    from airpods.models.hub_search import cache_key, look, search
    from airpods.stack.fit import memory_room
    from airpods.stack.targets import llama_spec

    endpoint = hub_http.endpoint(app.environ)
    app.terminal.info(f"searching {endpoint} for {query!r}")
    found = search(query, sort=sort, limit=limit, endpoint=endpoint, environ=app.environ)
    specs = app.stack.specs(create_secrets=False)
    spec = llama_spec(app.stack, specs, service)
    room = memory_room(app.stack, specs, spec)
    kept = app.stack.facts_cache
    kept.get("", 0, 0)  # loaded here, once: the threads only read it
    done, counter = [0], [0]

    def one(item: dict) -> Any:
        r = look(item, endpoint, app.environ, kept, counter)
        done[0] += 1
        app.terminal.info(f"read {done[0]} of {len(found)} repos ({counter[0] / 1e6:.1f} MB of headers)")
        return r

    with ThreadPoolExecutor(max_workers=8) as pool:
        repos = list(pool.map(one, found))
    for r in repos:
        if r.fresh:
            first = r.read_from.files[0]
            kept.put(cache_key(endpoint, r.repo, first.path), 0, first.size, r.facts)
    machine = figures(app.environ, threads=spec.threads if spec else None)
    from airpods.cli.speed_ui import estimates_here

    checked = estimates_here(app.environ)
    return [{**row(r, spec, room, machine), "estimates_here": checked} for r in repos]


def row(r: Any, spec: Any, room: tuple, machine: Any) -> dict[str, Any]:
    """A repo's JSON: its quantizations (the best that fits first, then by size), the best, the run line."""
    from airpods.orchestrate.memory_check import assess
    from airpods.plan.speed import predict

    out: dict[str, Any] = {"repo": r.repo, "downloads": r.downloads, "likes": r.likes, "vision": r.vision,
                           "split": any(len(g.files) > 1 for g in r.groups), "error": r.error, "quants": [],
                           "best": None, "run": None, "prediction_basis": machine.basis}
    if r.error:
        return out
    limit, why, others = room
    bare = dataclasses.replace(spec, gpus=(), gpu_layers=None, gpu_ram=None, vram=()) if spec else None
    for g in r.groups:
        facts = r.facts_of(g)
        q: dict[str, Any] = {"quant": g.quant, "name": g.name, "files": len(g.files), "size": g.size,
                             "fits": None, "max_ctx": None, "total": None, "generation_tokens_per_s": None,
                             "prompt_tokens_per_s": None}
        if bare is not None:
            rep = assess(bare, facts, g.name, budget_bytes=limit, budget_why=why, others=others)
            q.update(fits=rep.fits, max_ctx=rep.max_ctx or None, total=rep.estimate.total)
            p = predict(facts, bare.run.shape, machine).to_json()
            q.update(generation_tokens_per_s=p["generation_tokens_per_s"], prompt_tokens_per_s=p["prompt_tokens_per_s"])
        out["quants"].append(q)
    fitting = [q for q in out["quants"] if q["fits"]]
    best = max(fitting, key=lambda q: q["size"]) if fitting else None
    out["quants"].sort(key=lambda q: (q is not best, -q["size"]))
    if best is not None:
        out["best"], out["run"] = best, f"airpods run {r.repo}:{best['quant']}"
    return out

"""Whether a model would fit here, before any byte of it is downloaded: from its header alone (a
hub repo's, by ranged reads), at the settings of the service it would run in, within the memory
budget and, on a GPU machine, through the GPU plan among the other services."""

from __future__ import annotations

from typing import Any


def gpu_plan_for(stack: Any, specs: dict, probe, cost=None) -> tuple | None:
    """(the probe spec with its GPU plan among the other services, the `gpus` rows) on a GPU
    machine; None elsewhere. `cost`: the probe model's, when it is not in the volume (a hub repo's)."""
    from airpods.plan.gpu_apply import apply, plannable

    if not plannable(probe) or not stack.gpu_inventory or stack.runtime_settings.get("gpu_plan") == "off":
        return None
    others = {n: s for n, s in specs.items() if n != probe.name}
    costs = stack.model_costs(others if cost is not None else {**others, probe.name: probe})
    if cost is not None:
        costs[probe.name] = cost
    planned = apply({**others, probe.name: probe}, stack.gpu_inventory, costs, stack.gpu_held(specs))
    from airpods.orchestrate.vram_check import fit_rows

    return planned[probe.name], fit_rows(planned[probe.name], stack.gpu_inventory,
                                         stack.gpu_held({probe.name: probe}))


def fits_here(stack: Any, specs: dict, spec, header, group, limit: int | None, why: str, others: list) -> dict:
    """Whether a repo's model would fit `spec`: on a GPU machine the GPU plan for it among the other
    services, as `models fit` makes it (all its layers on the GPUs, the rest within the memory
    budget), elsewhere the memory budget alone."""
    import dataclasses

    from airpods.orchestrate.memory_check import assess
    from airpods.plan.gpu_plan import cost_of
    from airpods.plan.memory import facts_from_header
    from airpods.stack.fit import gpu_plan_for

    facts = facts_from_header(header.kv, group.size)
    bare = dataclasses.replace(spec, gpus=(), gpu_layers=None, gpu_ram=None, vram=())  # not its current model's plan
    report = assess(bare, facts, group.name, budget_bytes=limit, budget_why=why, others=others)
    out = {"fits": report.fits, "max_ctx": report.max_ctx or None, "total": report.estimate.total,
           "available": report.available, "limit": report.limit}
    cost = cost_of(facts, spec.run.shape, [(t.name, t.nbytes or 0) for t in header.tensors])
    planned = gpu_plan_for(stack, specs, bare, cost)
    if planned is not None:
        placed = planned[0]
        ram_ok = limit is None or (placed.gpu_ram or 0) <= limit - sum(b for _, b, _ in others)
        out.update(fits=bool(placed.gpu_layers == cost.n_layer and ram_ok), gpu_layers=placed.gpu_layers,
                   gpus=list(placed.gpus))
    return out


def quant_rows(stack: Any, specs: dict, spec, repo: str, revision: str, endpoint: str, found: list) -> list:
    """One row per quantization of the repo: its files and size and, from its header alone (ranged
    reads), its memory estimate at `spec`'s settings and whether it fits here now."""
    from airpods.models.gguf import GGUFError
    from airpods.models.hub_repo import read_remote_header

    limit, why, others = memory_room(stack, specs, spec)
    rows = []
    for g in found:
        row = {"quant": g.quant, "name": g.name, "files": [f.path for f in g.files], "size": g.size,
               "fits": None, "max_ctx": None, "total": None}
        try:
            header = read_remote_header(repo, g.files[0].path, revision, endpoint, stack.environ)
        except GGUFError:
            header = None
        if header is not None and spec is not None:
            row.update(fits_here(stack, specs, spec, header, g, limit, why, others))
        rows.append(row)
    return rows


def memory_room(stack: Any, specs: dict, spec) -> tuple[int | None, str, list]:
    """(the memory budget, why, the llama.cpp services other than `spec` running now and their use)."""
    from airpods.errors import AirpodsError
    from airpods.orchestrate.memory_check import budget, running_llama

    settings, mem = stack.runtime_settings, stack.memory_info
    limit, why = budget(settings.get("memory_budget", "auto"), mem.total, mem.source)
    try:
        others = running_llama(stack.runtime, specs, {spec.name}, settings["models_volume"],
                               stack.facts_cache) if spec else []
    except AirpodsError:  # no Podman here: nothing running to count
        others = []
    return limit, why, others

"""A router's resident set decided by memory (`max_loaded = "auto"`). Pure: from each model's
estimate at its own ctx and slots (weights + KV cache + compute), in RAM or in VRAM.

Pinned models are counted first (they are always loaded). Then as many others as fit at once in
the worst case: the k largest together, so that any k of them fit. A model that does not fit even
beside the pinned ones alone is left out, with the numbers. llama-server's --models-max is then
the pinned count plus k; llama-server evicts the least recently used model beyond it."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.plan.memory import ModelFacts, human
from airpods.plan.spec import ServiceSpec

GIB = 1 << 30


@dataclass(frozen=True)
class ModelCost:
    id: str
    ram: int  # bytes it holds in RAM when loaded
    vram: int = 0  # bytes on the GPUs when loaded (all of it on an accelerated router)
    pinned: bool = False


@dataclass(frozen=True)
class ResidentPlan:
    max_loaded: int
    why: str  # "2 at once: ..."
    left_out: tuple[tuple[str, str], ...] = ()  # (id, why it is never loaded)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f}"


def _over(need: int, budget: int, what: str) -> str:
    return f"would exceed {what}: {_gib(need)} of {_gib(budget)} GiB" if need > budget else ""


class PinsDoNotFit(ValueError):
    pass


def plan(costs: list[ModelCost], ram_budget: int | None, vram_budget: int | None = None) -> ResidentPlan:
    """The most models loaded at once that the budgets admit (None: no budget of that kind)."""
    ram_cap = ram_budget if ram_budget is not None else float("inf")
    vram_cap = vram_budget if vram_budget is not None else float("inf")
    pins = [c for c in costs if c.pinned]
    base_ram, base_vram = sum(c.ram for c in pins), sum(c.vram for c in pins)
    if base_ram > ram_cap or base_vram > vram_cap:
        raise PinsDoNotFit(f"the pinned models ({', '.join(c.id for c in pins)}) need {human(base_ram)} of RAM"
                           + (f" and {human(base_vram)} of VRAM" if base_vram else "") + " at once, more than the "
                           "budget: pin fewer, or give the service more memory")
    left_out, fitting = [], []
    for c in (c for c in costs if not c.pinned):
        why = (_over(base_ram + c.ram, int(ram_cap), "RAM") if ram_budget is not None else "") or \
              (_over(base_vram + c.vram, int(vram_cap), "VRAM") if vram_budget is not None else "")
        if why:
            left_out.append((c.id, why + (" with the pinned models loaded" if pins else "")))
        else:
            fitting.append(c)
    by_ram = sorted((c.ram for c in fitting), reverse=True)
    by_vram = sorted((c.vram for c in fitting), reverse=True)
    k = 0
    while k < len(fitting) and base_ram + sum(by_ram[:k + 1]) <= ram_cap and \
            base_vram + sum(by_vram[:k + 1]) <= vram_cap:
        k += 1
    total = len(pins) + k
    budget = " and ".join(f"{_gib(int(b))} GiB of {what}" for b, what in ((ram_budget, "RAM"), (vram_budget, "VRAM"))
                          if b is not None) or "no memory budget"
    why = (f"{total} at once ({len(pins)} pinned + the {k} largest others fit in {budget})" if pins else
           f"{total} at once (the {k} largest fit in {budget})")
    return ResidentPlan(max(1, total), why, tuple(left_out))


def costs_of(spec: ServiceSpec, facts: dict[str, ModelFacts]) -> list[ModelCost] | None:
    """Each model of a router at its own run shape (the [*] defaults, then its section); None when
    a model's header is unknown (its file not in the volume yet)."""
    from airpods.plan.argv import render_args
    from airpods.plan.memory import estimate, run_from_argv, with_draft

    assert spec.router is not None
    out = []
    for m in spec.router.models:
        if m.file not in facts:
            return None
        run = run_from_argv(render_args({**dict(spec.router.defaults), **dict(m.args)}))
        est = estimate(facts[m.file], run.shape)
        if run.draft_in_volume in facts:  # its draft loads and unloads with it
            est = with_draft(est, estimate(facts[run.draft_in_volume], run.draft_shape))
        on_gpu = spec.variant != "cpu"  # an accelerated router puts every layer on the GPUs
        out.append(ModelCost(m.id, 0 if on_gpu else est.total, est.total if on_gpu else 0, m.pin))
    return out


def with_max_loaded(spec: ServiceSpec, facts: dict[str, ModelFacts], ram_budget: int | None, ram_why: str,
                    vram_budget: int | None = None) -> ServiceSpec:
    """A router with max_loaded = "auto": its --models-max from the resident plan, and why."""
    from dataclasses import replace

    if spec.router is None or not spec.router.auto:
        return spec
    costs = costs_of(spec, facts)
    if costs is None:  # a model not pulled yet: llama-server's own default, said so
        return replace(spec, resident_why="auto: not every model's file is in the volume yet; llama-server's "
                                          "default of 4 applies until then")
    try:
        rp = plan(costs, ram_budget, vram_budget)
    except PinsDoNotFit as exc:
        return replace(spec, resident_why=f"auto: {exc}")
    command = list(spec.command)
    if "--models-max" in command:
        command[command.index("--models-max") + 1] = str(rp.max_loaded)
    else:
        command += ["--models-max", str(rp.max_loaded)]
    from airpods.plan.router import render_preset

    router = replace(spec.router, max_loaded=rp.max_loaded)
    left = {i for i, _ in rp.left_out}  # not in the preset: the router answers "model 'X' not found" at once
    preset = render_preset(replace(router, models=tuple(m for m in router.models if m.id not in left)), spec.name)
    return replace(spec, router=router, command=tuple(command), router_preset=preset,
                   resident_why=f"auto: {rp.why}; RAM budget: {ram_why}", resident_left_out=rp.left_out)

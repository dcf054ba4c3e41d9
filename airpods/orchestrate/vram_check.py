"""VRAM preflight: what the GPU plan puts on each GPU for the services being started, against
the memory free on that GPU now. A refusal names the GPU, both numbers and the layer count that
fits (exit 2, nothing created); --force makes it a warning."""

from __future__ import annotations

from typing import Any

from airpods.errors import UsageError
from airpods.plan.gpu_plan import GPU_OVERHEAD
from airpods.plan.memory import human
from airpods.plan.spec import ServiceSpec


def layers_that_fit(spec: ServiceSpec, gpu: int, free: int) -> int:
    """About how many layers fit when `free` bytes are left on `gpu` (the plan's share scaled)."""
    need = dict(spec.vram).get(gpu, 0)
    layers = spec.gpu_layers or 0
    body = need - GPU_OVERHEAD
    if body <= 0 or layers <= 0:
        return 0
    return max(0, min(layers, int(layers * (free - GPU_OVERHEAD) / body)))


def check_vram(todo: list[ServiceSpec], inventory: tuple, *, force: bool = False,
               released: list[ServiceSpec] = ()) -> list[str]:
    """Refuse (UsageError) when the planned VRAM of the services starting exceeds a GPU's free
    memory; returns warnings (with --force). `released`: running services this start recreates,
    whose memory is given back first."""
    free = {g.index: g.free for g in inventory}
    for spec in released:
        for gpu, size in spec.vram:
            if gpu in free:
                free[gpu] += size
    names = {g.index: g.name for g in inventory}
    needed: dict[int, list[tuple[ServiceSpec, int]]] = {}
    for spec in todo:
        for gpu, size in spec.vram:
            needed.setdefault(gpu, []).append((spec, size))
    over = [(gpu, users) for gpu, users in sorted(needed.items())
            if gpu in free and sum(size for _, size in users) > free[gpu]]
    if not over:
        return []
    lines = []
    for gpu, users in over:
        total = sum(size for _, size in users)
        lines.append(f"GPU {gpu} ({names[gpu]}): {human(total)} needed, {human(free[gpu])} free")
        lines += [f"  {s.name}: {human(size)} ({s.gpu_plan})" for s, size in users]
    gpu, users = over[0]
    first = users[0][0]
    room = free[gpu] - sum(size for s, size in users[1:])
    fit = layers_that_fit(first, gpu, room)
    hint = (f"set services.{first.name}.command_args.n_gpu_layers = {fit} (about that many layers fit), "
            if fit else "") + (f"free memory on GPU {gpu} (nvidia-smi shows what holds it), pin the service "
                               f"elsewhere (services.{first.name}.gpu.devices), or start anyway: "
                               "airpods start --force")
    if force:
        return [f"{line}; starting anyway (--force)" for line in lines if not line.startswith("  ")]
    total = sum(size for _, size in users)
    raise UsageError(f"service '{first.name}' needs about {human(total)} on GPU {gpu} ({names[gpu]}) but "
                     f"{human(free[gpu])} is free; nothing was created", details=lines, hint=hint)


def fit_rows(spec: ServiceSpec, inventory: tuple, own: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """`models fit --json`'s `gpus`: per GPU the plan uses, what it needs and what is free. `own`:
    what the service holds there now, while it runs (a restart gives it back first)."""
    by_index = {g.index: g for g in inventory}
    vram, own = dict(spec.vram), own or {}
    return [{"index": i, "name": by_index[i].name if i in by_index else "?", "vram_needed": vram.get(i, 0),
             "vram_free": by_index[i].free if i in by_index else None, "vram_held": own.get(i, 0),
             "gpu_layers": spec.gpu_layers,
             "fits": i not in by_index or vram.get(i, 0) <= by_index[i].free + own.get(i, 0)} for i in spec.gpus]

"""The GPU plan (pure): which GPUs each llama.cpp service gets, how many of its layers go there,
the split across GPUs, the VRAM it takes on each and the RAM for what stays on the CPU.

Inputs are data: the GPU inventory (probes/gpu.py) and, per service, what its model costs at its
run shape (`ModelCost`: each repeating layer's weights + KV cache, the output head, what always
stays in RAM, the compute buffer). Policy, in this order:

- the user wins: `gpu.devices` pins a service to GPUs; a GPU flag set by the user (n_gpu_layers,
  tensor_split, split_mode, main_gpu, device) makes the service checked, not planned;
- largest model first, each on one GPU of its own where one holds it (best fit: the fullest GPU
  that still holds it), so services share a GPU only when their sum fits;
- a model no single GPU holds spans the fewest GPUs that do, layers split in proportion to room;
- what the GPUs cannot hold stays in RAM: as many layers as fit go to the GPUs (llama.cpp offloads
  the last N repeating layers; the output head only with all of them).

Memory is planned against what airpods can have of each GPU: its total less what other processes
hold (a display server, another user's job), i.e. the free memory plus what this config's own
running services hold (`held`, from their labels), so the plan stays the same while they run and
never counts on memory something else uses. Free VRAM is checked again at start (vram_check.py)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
# The CUDA context, cuBLAS workspace and llama.cpp's per-device buffers beyond weights, KV cache
# and compute: measured on an H200 (driver 580), a 5.8 GiB F16 model at ctx 8192 used 7224 MiB,
# 295 MiB more than its weights + KV cache + compute.
GPU_OVERHEAD = 300 * MIB
GPU_FLAGS = ("--n-gpu-layers", "-ngl", "--gpu-layers", "--tensor-split", "-ts", "--split-mode", "-sm",
             "--main-gpu", "-mg", "--device", "-dev")


class GpuPlanError(ValueError):
    """A pin that names no GPU of this machine (the caller reports it as a config error)."""

    def __init__(self, service: str, message: str):
        super().__init__(message)
        self.service = service


@dataclass(frozen=True)
class ModelCost:
    """One llama.cpp process's model at its run shape, in bytes."""

    layers: tuple[int, ...]  # each repeating layer: its weights + its KV cache
    output: int  # the output head (goes to a GPU only with every layer)
    cpu_only: int  # what llama.cpp keeps in RAM whatever is offloaded (token embeddings)
    compute: int  # the compute buffer, per GPU used (and on the CPU while a layer runs there)
    kv: tuple[int, ...] = ()  # each repeating layer's KV cache (part of `layers`)
    draft: int = 0  # a draft model's weights + KV cache + compute: all of it on the target's first GPU

    def with_draft(self, draft: int) -> ModelCost:
        from dataclasses import replace

        return replace(self, draft=draft)

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    def on_gpu(self, n: int) -> int:
        """The layers' and head's bytes when the last n repeating layers are offloaded."""
        n = max(0, min(n, self.n_layer))
        return sum(self.layers[self.n_layer - n:]) + (self.output if n == self.n_layer else 0)

    @property
    def full(self) -> int:
        return self.on_gpu(self.n_layer) + self.compute + GPU_OVERHEAD + self.draft

    def ram_parts(self, n: int) -> tuple[int, int, int]:
        """(weights, KV cache, compute buffer) in RAM with n layers offloaded: the CPU's layers keep
        their KV cache in RAM, and the CPU needs a compute buffer of its own while it runs any."""
        on_cpu = self.n_layer - min(max(n, 0), self.n_layer)
        kv = sum(self.kv[:on_cpu]) if self.kv else 0
        weights = self.cpu_only + sum(self.layers[:on_cpu]) - kv + (0 if on_cpu == 0 else self.output)
        return weights, kv, self.compute if on_cpu else 0

    def ram(self, n: int) -> int:
        """What stays in RAM with n layers offloaded."""
        return sum(self.ram_parts(n))


@dataclass(frozen=True)
class GpuClaim:
    service: str
    cost: ModelCost | None  # None: its model cannot be read here (llama.cpp's own --fit decides)
    pins: tuple[str, ...] = ()  # services.NAME.gpu.devices: indices or UUIDs
    user: str | None = None  # the user's own GPU flag (key path): checked, not planned
    cap: int | None = None  # services.NAME.gpu.memory: the most VRAM it may take in all (bytes)


@dataclass(frozen=True)
class GpuPlacement:
    service: str
    gpus: tuple[int, ...]  # host indices, in the order the container sees them (0, 1, ...)
    layers: int | None  # repeating layers offloaded (n_layer + 1 = with the output head); None: not planned
    n_layer: int
    split: tuple[float, ...]  # per GPU, for --tensor-split (more than one GPU)
    vram: tuple[tuple[int, int], ...]  # (GPU index, bytes)
    ram: int  # bytes that stay in RAM
    reason: str
    ram_parts: tuple[int, ...] = ()  # (weights, KV cache, compute) of `ram`, when planned

    @property
    def planned(self) -> bool:
        return self.layers is not None

    @property
    def argv_layers(self) -> int | None:
        """The --n-gpu-layers value: every layer and the head is n_layer + 1."""
        if self.layers is None:
            return None
        return self.n_layer + 1 if self.layers >= self.n_layer else self.layers

    def describe(self) -> str:
        where = "GPU " + ",".join(map(str, self.gpus)) if self.gpus else "CPU"
        if self.layers is None:
            return where
        return f"{where} · {min(self.layers, self.n_layer)}/{self.n_layer} layers"


def _pinned(claim: GpuClaim, gpus: dict[int, object]) -> list[int]:
    if not claim.pins:
        return list(gpus)
    out = []
    for pin in claim.pins:
        hit = [i for i, g in gpus.items() if pin == str(i) or pin == getattr(g, "uuid", None)]
        if not hit:
            have = ", ".join(f"{i} ({getattr(g, 'uuid', '?')})" for i, g in gpus.items()) or "none"
            raise GpuPlanError(claim.service, f"services.{claim.service}.gpu.devices: no GPU {pin!r} on this "
                                              f"machine (GPUs: {have})")
        out += [i for i in hit if i not in out]
    return out


def _share(cost: ModelCost, room: dict[int, int], chosen: list[int], layers: int) -> tuple[dict[int, int], tuple]:
    """VRAM per GPU with `layers` spread over `chosen` in proportion to their room (and the split)."""
    per_gpu = cost.compute + GPU_OVERHEAD
    usable = {i: max(0, room[i] - per_gpu - (cost.draft if i == chosen[0] else 0)) for i in chosen}
    total = sum(usable.values()) or 1
    split = tuple(round(usable[i] / total, 3) for i in chosen)
    body = cost.on_gpu(layers)
    vram = {i: per_gpu + int(body * usable[i] / total) for i in chosen}
    vram[chosen[0]] += cost.draft  # llama.cpp puts the draft on the target's (first) device
    return vram, split


def _place(claim: GpuClaim, allowed: list[int], room: dict[int, int]) -> GpuPlacement:
    cost = claim.cost
    assert cost is not None
    if claim.cap is not None:  # held to its share: no more than the cap over all its GPUs
        left = claim.cap
        capped = {}
        for i in sorted(allowed, key=lambda i: (-room[i], i)):
            capped[i] = max(0, min(room[i], left))
            left -= capped[i]
        room = {**room, **capped}
    fits = [i for i in allowed if room[i] >= cost.full]
    if fits:  # one GPU of its own: the fullest that still holds it
        best = min(fits, key=lambda i: (room[i], i))
        return GpuPlacement(claim.service, (best,), cost.n_layer, cost.n_layer, (), ((best, cost.full),),
                            cost.ram(cost.n_layer), f"fits on GPU {best}", cost.ram_parts(cost.n_layer))
    per_gpu = cost.compute + GPU_OVERHEAD
    by_room = sorted(allowed, key=lambda i: (-room[i], i))
    for k in range(2, len(by_room) + 1):  # the fewest GPUs that hold it together
        chosen = sorted(by_room[:k])
        if sum(max(0, room[i] - per_gpu) for i in chosen) - cost.draft >= cost.on_gpu(cost.n_layer):
            vram, split = _share(cost, room, chosen, cost.n_layer)
            return GpuPlacement(claim.service, tuple(chosen), cost.n_layer, cost.n_layer, split,
                                tuple(vram.items()), cost.ram(cost.n_layer),
                                f"no single GPU holds it: split over GPUs {', '.join(map(str, chosen))}",
                                cost.ram_parts(cost.n_layer))
    chosen = sorted(i for i in allowed if room[i] > per_gpu)  # part of it: as many layers as fit
    usable = sum(room[i] - per_gpu for i in chosen) - cost.draft
    layers = 0
    while layers < cost.n_layer and cost.on_gpu(layers + 1) <= usable:
        layers += 1
    if layers == 0:
        weights, kv, compute = cost.ram_parts(0)  # and its draft, with it in RAM
        return GpuPlacement(claim.service, (), 0, cost.n_layer, (), (), cost.ram(0) + cost.draft,
                            "no GPU has room for one layer: runs on the CPU", (weights + cost.draft, kv, compute))
    vram, split = _share(cost, room, chosen, layers)
    return GpuPlacement(claim.service, tuple(chosen), layers, cost.n_layer, split if len(chosen) > 1 else (),
                        tuple(vram.items()), cost.ram(layers),
                        f"partial offload: {layers} of {cost.n_layer} layers fit on GPU "
                        f"{', '.join(map(str, chosen))}; the rest runs from RAM", cost.ram_parts(layers))


def available(inventory: tuple, held: dict[int, int] | None = None) -> dict[int, int]:
    """Per GPU, what airpods can have: its total less what processes other than this config's
    running services hold (total - free - held, never below 0). `held`: bytes per GPU its running
    services hold (their planned VRAM, from their labels); none known: all that is used is others'."""
    held = held or {}
    out = {}
    for g in inventory:
        total, free = int(g.total), int(getattr(g, "free", g.total))
        others = max(0, total - free - held.get(g.index, 0))
        out[g.index] = max(0, total - others)
    return out


def plan_gpus(inventory: tuple, claims: list[GpuClaim], held: dict[int, int] | None = None
              ) -> dict[str, GpuPlacement]:
    """Place every claim; `inventory` holds objects with `index`, `uuid`, `total` and `free` (bytes)."""
    gpus = {g.index: g for g in inventory}
    room = available(inventory, held)
    out: dict[str, GpuPlacement] = {}
    planned = sorted((c for c in claims if c.cost is not None and c.user is None),
                     key=lambda c: (-(c.cost.full if c.cost else 0), c.service))
    for claim in [c for c in claims if c not in planned]:
        allowed = _pinned(claim, gpus)
        why = (f"{claim.user} is set: checked, not planned" if claim.user else
               "its model cannot be read here: every GPU, llama.cpp places the layers")
        vram = ()
        if claim.cost is not None and allowed:  # the user's own layout: assume it spreads evenly
            each = claim.cost.full // len(allowed)
            vram = tuple((i, each) for i in allowed)
            for i in allowed:
                room[i] -= each
        out[claim.service] = GpuPlacement(claim.service, tuple(allowed), None,
                                          claim.cost.n_layer if claim.cost else 0, (), vram, 0, why)
    for claim in planned:
        allowed = _pinned(claim, gpus)
        placement = _place(claim, allowed, room)
        for i, used in placement.vram:
            room[i] -= used
        if claim.pins:
            placement = GpuPlacement(**{**placement.__dict__, "reason": placement.reason + " (pinned)"})
        out[claim.service] = placement
    return out


def layer_weights(tensors: list[tuple[str, int]], n_layer: int) -> tuple[list[int], int, int]:
    """(bytes of each repeating layer's weights, the output head, the token embeddings) from a
    GGUF's tensor names and sizes (`blk.N.*`, `output.weight`, `token_embd.weight`). A model whose
    head is tied to its embeddings gets the embeddings' size as its head on the GPU."""
    layers = [0] * n_layer
    output = embd = 0
    for name, size in tensors:
        if name.startswith("blk."):
            part = name.split(".")[1]
            if part.isdigit() and int(part) < n_layer:
                layers[int(part)] += size
                continue
        if name.startswith("output"):
            output += size
        elif name.startswith("token_embd"):
            embd += size
        else:
            output += size  # norms and the like: small, with the head
    return layers, output or embd, embd


def cost_of(facts: object, shape: object, tensors: list[tuple[str, int]]) -> ModelCost:
    """A model's ModelCost at a run shape (facts: plan.memory.ModelFacts; shape: RunShape)."""
    from airpods.plan.memory import estimate, kv_per_layer

    n_layer = facts.n_layer  # type: ignore[attr-defined]
    weights, output, embd = layer_weights(tensors, n_layer)
    if not any(weights):  # a header without per-layer names: spread the weights evenly
        rest = max(0, facts.weights - output - embd)  # type: ignore[attr-defined]
        weights = [rest // max(1, n_layer)] * n_layer
    kv = kv_per_layer(facts, shape)  # type: ignore[arg-type]
    layers = tuple(int(w + k) for w, k in zip(weights, kv, strict=False))
    return ModelCost(layers, output, embd, estimate(facts, shape).compute,  # type: ignore[arg-type]
                     tuple(int(k) for k in kv[:len(layers)]))

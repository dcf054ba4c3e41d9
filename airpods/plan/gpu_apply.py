"""The GPU plan applied to resolved specs (pure): each planned llama.cpp service sees only its
GPUs (CDI names per GPU, or AMD's /dev/kfd plus its render nodes), gets `--n-gpu-layers` and, over
several GPUs, `--split-mode layer --tensor-split`, and carries what the plan decided (gpus,
gpu_layers, gpu_plan, vram, gpu_ram) for status, render, the preflight and export."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airpods.kinds import kind_of
from airpods.plan.gpu_plan import GpuClaim, GpuPlacement, ModelCost, plan_gpus
from airpods.plan.memory import run_from_argv
from airpods.plan.spec import ServiceSpec

PLANNED_VARIANTS = ("cuda", "rocm")
LAYER_FLAGS = ("--n-gpu-layers", "-ngl", "--gpu-layers")


def plannable(spec: ServiceSpec) -> bool:
    return kind_of(spec.kind).llama_server and spec.enabled and spec.variant in PLANNED_VARIANTS


def claims(specs: dict[str, ServiceSpec], costs: dict[str, ModelCost | None]) -> list[GpuClaim]:
    return [GpuClaim(n, costs.get(n) if s.router is None else None, s.gpu_pins, s.gpu_user, s.gpu_cap)
            for n, s in specs.items() if plannable(s)]


def _set_flag(argv: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    for i, item in enumerate(argv):
        if item.split("=", 1)[0] in flags:
            return [*argv[:i], flags[0], value, *argv[i + (1 if "=" in item else 2):]]
    return [*argv, flags[0], value]


def devices(spec: ServiceSpec, gpus: list[Any]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(devices, extra env) that give the container these GPUs alone, numbered from 0 inside."""
    if not gpus:
        return (), {}
    if spec.variant == "rocm":
        return ("/dev/kfd", *(f"/dev/dri/renderD{128 + g.index}" for g in gpus)), {}
    names = [g.cdi_name for g in gpus]
    if all(names):
        return tuple(names), {}
    # The CDI spec has no per-GPU names: every GPU is visible, CUDA is told which to use.
    return ("nvidia.com/gpu=all",), {"CUDA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus)}


def apply_one(spec: ServiceSpec, p: GpuPlacement, inventory: dict[int, Any]) -> ServiceSpec:
    devs, env = devices(spec, [inventory[i] for i in p.gpus])
    command = list(spec.command)
    if p.planned and spec.router is None:
        command = _set_flag(command, LAYER_FLAGS, str(p.argv_layers if p.gpus else 0))
        if len(p.gpus) > 1:
            command = _set_flag(command, ("--split-mode", "-sm"), "layer")
            command = _set_flag(command, ("--tensor-split", "-ts"), ",".join(f"{s:g}" for s in p.split))
    return replace(spec, devices=devs if spec.devices else spec.devices, env={**spec.env, **env},
                   command=tuple(command), llama=run_from_argv(command) if spec.router is None else None,
                   gpus=p.gpus, gpu_layers=p.layers, gpu_n_layer=p.n_layer or None, gpu_plan=p.reason, vram=p.vram,
                   gpu_ram=p.ram if p.planned else None, gpu_ram_parts=p.ram_parts if p.planned else ())


def apply(specs: dict[str, ServiceSpec], inventory: tuple, costs: dict[str, ModelCost | None],
          held: dict[int, int] | None = None) -> dict[str, ServiceSpec]:
    """Plan the GPUs of every enabled llama.cpp service on a GPU variant and apply it; `held` is
    what these services hold now where they run (gpu_plan.available). Raises GpuPlanError for a pin
    to a GPU this machine does not have."""
    found = claims(specs, costs)
    if not found or not inventory:
        return specs
    placements = plan_gpus(inventory, found, held)
    by_index = {g.index: g for g in inventory}
    return {n: apply_one(s, placements[n], by_index) if n in placements else s for n, s in specs.items()}

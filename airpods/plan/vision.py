"""Vision projectors (pure): a llama.cpp model that came with an `mmproj-*.gguf` gets it — a
single-model service `--mmproj /models/FILE`, a router model `mmproj` in its preset section —
unless the user set one."""

from __future__ import annotations

from dataclasses import replace

from airpods.kinds import kind_of
from airpods.plan.memory import run_from_argv
from airpods.plan.router import render_preset
from airpods.plan.spec import ServiceSpec

MMPROJ_FLAGS = ("--mmproj", "-mm")


def with_projectors(specs: dict[str, ServiceSpec], found: dict[str, dict[str, str]]) -> dict[str, ServiceSpec]:
    """`found`: model volume -> {model file: projector file}."""
    out = {}
    for name, spec in specs.items():
        volume = next((v.source for v in spec.volumes if v.target == "/models"), None)
        pairs = found.get(volume or "", {})
        if not kind_of(spec.kind).llama_server or not pairs:
            out[name] = spec
        elif spec.router is None:
            model = spec.run.model_in_volume
            mine = any(a.split("=", 1)[0] in MMPROJ_FLAGS for a in spec.command)
            command = (*spec.command, "--mmproj", f"/models/{pairs[model]}") if model in pairs and not mine else None
            out[name] = replace(spec, command=command, llama=run_from_argv(command)) if command else spec
        else:
            models = tuple(replace(m, args=(*m.args, ("mmproj", f"/models/{pairs[m.file]}")))
                           if m.file in pairs and not any(k in ("mmproj", "mm") for k, _ in m.args) else m
                           for m in spec.router.models)
            router = replace(spec.router, models=models)
            out[name] = replace(spec, router=router, router_preset=render_preset(router, name))
    return out

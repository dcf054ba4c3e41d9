"""What every `airpods models` command shares: the llama.cpp service and model volume it acts on,
sizes as people read them, and a model's GPU plan among the other services. Below both the
`models` group and `models pull`, so neither imports the other's helpers."""

from __future__ import annotations

import click

from airpods.cli.application import Application
from airpods.errors import UsageError

service_option = click.option("--service", "-s", metavar="NAME",
                              help="Use the model volume of this llama.cpp service (default: runtime.models_volume).")


def llama_spec(app: Application, specs: dict, service: str | None):
    """The llama.cpp service whose settings (volume, ctx, slots) a models command uses: the one
    named, else `llamacpp`, else the first llama.cpp service; None when there is none."""
    if service:
        app.select(specs, (service,))
        if specs[service].kind != "llamacpp":
            raise UsageError(f"service '{service}' is a {specs[service].kind} service, not llama.cpp")
        return specs[service]
    llama = [s for s in specs.values() if s.kind == "llamacpp"]
    return next((s for s in llama if s.name == "llamacpp"), llama[0] if llama else None)


def store_of(app: Application, service: str | None):
    from airpods.models.store import ModelStore

    specs = app.specs(create_secrets=False)
    volume = app.runtime_settings["models_volume"]
    if service:
        spec = llama_spec(app, specs, service)
        volume = next((v.source for v in spec.volumes if v.target == "/models"), volume)
    labels = {**app.runtime_settings["labels"], "io.airpods.managed": "true", "io.airpods.project": app.project}
    return ModelStore(app.runtime, volume, labels)


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def gpu_plan_for(app: Application, specs: dict, probe, cost=None) -> tuple | None:
    """(the probe spec with its GPU plan among the other services, the `gpus` rows) on a GPU
    machine; None elsewhere. `cost`: the probe model's, when it is not in the volume (a hub repo's)."""
    from airpods.plan.gpu_apply import apply, plannable

    if not plannable(probe) or not app.gpu_inventory or app.runtime_settings.get("gpu_plan") == "off":
        return None
    others = {n: s for n, s in specs.items() if n != probe.name}
    costs = app.model_costs(others if cost is not None else {**others, probe.name: probe})
    if cost is not None:
        costs[probe.name] = cost
    planned = apply({**others, probe.name: probe}, app.gpu_inventory, costs, app.gpu_held(specs))
    from airpods.orchestrate.vram_check import fit_rows

    return planned[probe.name], fit_rows(planned[probe.name], app.gpu_inventory, app.gpu_held({probe.name: probe}))

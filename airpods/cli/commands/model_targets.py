"""What every `airpods models` command shares: the llama.cpp service and model volume it acts on,
sizes as people read them, and a model's GPU plan among the other services. Below both the
`models` group and `models pull`, so neither imports the other's helpers."""

from __future__ import annotations

import click

from airpods.cli.application import Application
from airpods.errors import UsageError
from airpods.kinds import kind_of

service_option = click.option("--service", "-s", metavar="NAME",
                              help="Use the model volume of this llama.cpp service (default: runtime.models_volume).")


def llama_spec(app: Application, specs: dict, service: str | None):
    """The llama.cpp service whose settings (volume, ctx, slots) a models command uses: the one
    named, else `llamacpp`, else the first llama.cpp service; None when there is none."""
    if service:
        app.stack.select(specs, (service,))
        if not kind_of(specs[service].kind).llama_server:
            raise UsageError(f"service '{service}' is a {specs[service].kind} service, not llama.cpp")
        return specs[service]
    llama = [s for s in specs.values() if kind_of(s.kind).llama_server]
    return next((s for s in llama if s.name == "llamacpp"), llama[0] if llama else None)


def store_of(app: Application, service: str | None):
    from airpods.models.store import ModelStore

    specs = app.stack.specs(create_secrets=False)
    volume = app.stack.runtime_settings["models_volume"]
    if service:
        spec = llama_spec(app, specs, service)
        volume = next((v.source for v in spec.volumes if v.target == "/models"), volume)
    labels = {**app.stack.runtime_settings["labels"], "io.airpods.managed": "true",
              "io.airpods.project": app.stack.project}
    return ModelStore(app.stack.runtime, volume, labels)


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

    if not plannable(probe) or not app.stack.gpu_inventory or app.stack.runtime_settings.get("gpu_plan") == "off":
        return None
    others = {n: s for n, s in specs.items() if n != probe.name}
    costs = app.stack.model_costs(others if cost is not None else {**others, probe.name: probe})
    if cost is not None:
        costs[probe.name] = cost
    planned = apply({**others, probe.name: probe}, app.stack.gpu_inventory, costs, app.stack.gpu_held(specs))
    from airpods.orchestrate.vram_check import fit_rows

    return planned[probe.name], fit_rows(planned[probe.name], app.stack.gpu_inventory,
                                         app.stack.gpu_held({probe.name: probe}))


def probe_spec(spec, model: str, *, ctx: int | None = None, parallel: int | None = None):
    """`spec` as it would run `model` (a file in its volume): a router's child gets the router's
    defaults and the model's own section; ctx and parallel replace the service's when given."""
    import dataclasses

    from airpods.plan.memory import run_from_argv
    from airpods.plan.router import model_argv

    argv = model_argv(spec.router, model) if spec.router is not None else list(spec.command)
    for flags, value in ((("--ctx-size", "-c"), ctx), (("--parallel", "-np"), parallel)):
        if value is not None:
            argv = _set_flag(argv, flags, str(value))
    argv = _set_flag(argv, ("--model", "-m"), f"/models/{model}")
    return dataclasses.replace(spec, command=tuple(argv), router=None, llama=run_from_argv(argv))


def _set_flag(argv: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    for i, item in enumerate(argv[:-1]):
        if item in flags:
            return [*argv[:i + 1], value, *argv[i + 2:]]
    return [*argv, flags[0], value]


def settle(app: Application, spec, base: str, model_id: str, unload: bool) -> None:
    """The router answers at once; wait until the model really is (un)loaded. `base`: the router's
    URL, checked by the caller (orchestrate/running.py serving)."""
    from airpods.errors import RuntimeFailure
    from airpods.health.router_api import list_models
    from airpods.health.wait import Done, Pending, WaitTimeout, wait_for

    def check():
        states = {m.id: m for m in list_models(base, spec.env.get("LLAMA_API_KEY")) or []}
        state = states[model_id].state if model_id in states else "unknown"
        if state == "failed":
            raise RuntimeFailure(f"{spec.name}: model {model_id} failed to load (exit code "
                                 f"{states[model_id].exit_code})", hint=f"see airpods logs {spec.name}")
        done = state not in ("loaded", "loading") if unload else state == "loaded"
        return Done(state) if done else Pending(state)

    try:
        with app.terminal.status(f"{'unloading' if unload else 'loading'} {model_id}"):
            wait_for(check, timeout=30 if unload else spec.health.timeout, cap=0.2)
    except WaitTimeout as exc:
        raise RuntimeFailure(f"{spec.name}: model {model_id} is still {exc.last.detail} after {exc.waited:.0f}s",
                             hint=f"see airpods logs {spec.name}") from exc


def preset_on_disk(spec) -> dict[str, str]:
    """The models of the preset the running router was given (airpods' own file): id -> file."""
    from pathlib import Path

    from airpods.plan.router import preset_models

    try:
        return preset_models(Path(spec.router.preset_host_path).read_text(encoding="utf-8"))
    except OSError:
        return {}

"""`airpods models …`: the GGUF files in the llama.cpp model volume."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.cli.lazy import LazySubcommands
from airpods.cli.models_ui import service_option, settle, size_text
from airpods.errors import UsageError
from airpods.stack.fit import gpu_plan_for
from airpods.stack.targets import llama_spec, preset_on_disk, probe_spec, store_of


@click.group(cls=LazySubcommands, lazy={"pull": "airpods.cli.commands.models_pull:pull_cmd",
                                         "use": "airpods.cli.commands.models_use:use_cmd",
                                         "search": "airpods.cli.commands.models_search:search_cmd"})
def models() -> None:
    """Manage GGUF models in the llama.cpp model volume (mounted read-only at /models).

    \b
    Examples:
      airpods models import ~/Downloads/qwen2.5-0.5b-instruct-q4_k_m.gguf
      airpods models pull bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M
      airpods models list
    Then make it the service's: airpods models use NAME (or try it: airpods run NAME).
    """


@models.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="File name in the volume (default: the file's own name).")
@click.option("--force", is_flag=True, help="Replace a model of the same name.")
@service_option
@pass_app
def import_cmd(app: Application, path: Path, name: str | None, force: bool, service: str | None) -> None:
    """Copy a local GGUF file into the model volume (checks it is GGUF, records its sha256)."""
    from airpods.models.store import check_name

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    check_name(name or path.name)  # before touching Podman
    store = store_of(app.stack, service)
    with app.terminal.bytes_progress(f"importing {path.name}") as progress:
        entry = store.import_file(path, name, progress, force=force)
    for part, size in store.cleared:
        app.terminal.info(f"removed {part} ({size_text(size)}): what an import that was killed had written")
    app.terminal.success(f"imported {entry.file} into {store.volume} ({size_text(entry.size)}, "
                         f"{entry.architecture or '?'} {entry.quantization or ''}, "
                         f"sha256 {(entry.sha256 or '?')[:12]}…)")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help=f"Print a JSON list ({contract.MODELS_LIST.help()}).")
@service_option
@pass_app
def list_cmd(app: Application, as_json: bool, service: str | None) -> None:
    """List the models in the volume: file, size, architecture, quantization."""
    store = store_of(app.stack, service)
    entries = store.list()
    root = store.root(create=False)
    for part, size in store.clear_stale_imports(root) if root else ():
        app.terminal.info(f"removed {part} ({size_text(size)}): what an import that was killed had written")
    if as_json:
        app.terminal.print_json([e.to_json() for e in entries], contract.MODELS_LIST)
        return
    if not entries:
        app.terminal.info(f"no models in {store.volume}; add one with `airpods models import PATH` "
                          "or `airpods models pull org/repo:QUANT`")
        return
    from airpods.orchestrate.memory_check import model_facts
    from airpods.plan.memory import estimate, human, shape_from_argv
    from airpods.plan.router import model_argv

    spec = llama_spec(app.stack, app.stack.specs(create_secrets=False), service)
    shape = shape_from_argv(() if spec is None else model_argv(spec.router) if spec.router else spec.command)

    def est(name: str) -> str:
        facts = model_facts(root, name, app.stack.facts_cache) if root else None
        return human(estimate(facts, shape).total) if facts else "?"

    where = f" at {spec.name}'s ctx {shape.ctx or 'trained'} × {shape.parallel}" if spec else ""
    app.terminal.table(["FILE", "SIZE", "ARCH", "QUANT", "EST. MEM", "SHA256"],
                       [[e.file + (" (vision)" if e.mmproj else "") + (f" ({e.parts} parts)" if e.parts > 1 else ""),
                         size_text(e.size), e.architecture or "?", e.quantization or "?", est(e.file),
                         (e.sha256 or "-")[:12]] for e in entries])
    app.terminal.info(f"EST. MEM: weights + KV cache + compute{where} (airpods models fit NAME for the breakdown)")


@models.command("rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@service_option
@pass_app
def rm_cmd(app: Application, name: str, yes: bool, service: str | None) -> None:
    """Delete a model file from the volume (asks first unless --yes). NAME is a file name as
    `airpods models list` shows it, never a path."""
    from airpods.models.store import check_name

    check_name(name)  # before touching Podman
    store = store_of(app.stack, service)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {name} without confirmation", hint="pass --yes")
        click.confirm(f"Delete {name} from {store.volume}?", abort=True, err=True)
    store.remove(name)
    app.terminal.success(f"deleted {name} from {store.volume}")


@models.command("fit")
@click.argument("model")
@click.option("--ctx", type=click.IntRange(min=0), help="Context size (total across slots) instead of the service's.")
@click.option("--parallel", type=click.IntRange(min=1), help="Slots instead of the service's --parallel.")
@click.option("--json", "as_json", is_flag=True,
              help=f"One JSON object ({contract.MODELS_FIT.help()}; bytes as integers).")
@service_option
@pass_app
def fit_cmd(app: Application, model: str, ctx: int | None, parallel: int | None, as_json: bool,
            service: str | None) -> None:
    """Will MODEL fit? Its memory estimate at a service's settings, against what that service may use.

    \b
    The estimate comes from the GGUF header: weights (tensor sizes), KV cache (per attention layer:
    ctx x kv heads x (key + value length) x cache-type bytes; sliding-window layers capped at the
    window), compute buffer and a fixed overhead. Available: the service's resources.memory, else
    runtime.memory_budget minus the llama.cpp services running now. `airpods start` runs the same
    check before it creates anything.

    \b
    Examples:
      airpods models fit SmolLM2-135M-Instruct.Q4_1.gguf
      airpods models fit qwen2.5-7b-instruct-q4_k_m.gguf --ctx 32768 --parallel 4 --json
    """
    from airpods.models.store import check_name
    from airpods.orchestrate.memory_check import budget, fit_report, running_llama
    from airpods.plan.memory import human

    check_name(model)
    specs = app.stack.specs(create_secrets=False)
    spec = llama_spec(app.stack, specs, service)
    if spec is None:
        raise UsageError("no llama.cpp service in the config to take settings from",
                         hint="add one (see airpods config show) or pass --service NAME")
    probe = probe_spec(spec, model, ctx=ctx, parallel=parallel)
    gpus = gpu_plan_for(app.stack, specs, probe)
    probe = gpus[0] if gpus else probe
    settings, mem = app.stack.runtime_settings, app.stack.memory_info
    limit, why = budget(settings.get("memory_budget", "auto"), mem.total, mem.source)
    others = running_llama(app.stack.runtime, specs, {spec.name}, settings["models_volume"], app.stack.facts_cache)
    report = fit_report(app.stack.runtime, probe, settings["models_volume"], budget_bytes=limit, budget_why=why,
                        others=others, kept=app.stack.facts_cache)
    if report is None:
        store = store_of(app.stack, service)
        have = ", ".join(e.file for e in store.list()) or "none"
        raise UsageError(f"{model} is not a readable GGUF model in {store.volume} (models: {have})",
                         hint="see airpods models list")
    rows = gpus[1] if gpus else []
    from airpods.cli.speed_ui import fit_speed

    speed = fit_speed(app, spec, probe, model)
    if as_json:
        app.terminal.print_json({**report.to_json(), "gpus": rows, **speed}, contract.MODELS_FIT)
        return
    e, t = report.estimate, app.terminal
    if rows:
        t.table(["GPU", "NAME", "VRAM NEEDED", "VRAM FREE", "LAYERS"],
                [[r["index"], r["name"], human(r["vram_needed"]), human(r["vram_free"] or 0),
                  f"{probe.gpu_layers}/{probe.gpu_n_layer}"] for r in rows], title=f"GPU plan: {probe.gpu_plan}")
    rows = [["weights", human(e.weights)], ["KV cache", human(e.kv_cache)], ["compute", human(e.compute)],
            ["overhead", human(e.overhead)], ["total", human(e.total)]]
    t.print(f"{model} with {spec.name}'s settings: ctx {e.ctx}, {e.parallel} slot{'s' if e.parallel > 1 else ''}")
    t.table(["PART", "SIZE"], rows)
    if report.available is None:
        t.info(f"no memory budget applies ({report.limit})")
    elif report.fits:
        t.success(f"fits: {human(e.total)} of {human(report.available)} available ({report.limit})")
    else:
        t.warning(f"does not fit: {human(e.total)} needed, {human(report.available)} available ({report.limit})")
        t.info(f"largest ctx_size that fits: {report.max_ctx}" if report.max_ctx else
               "even the smallest context does not fit: use a smaller quantization or model")
    from airpods.cli.speed_ui import say_speed

    say_speed(t, speed)


def _routers(app: Application, service: str | None) -> list:
    specs = app.stack.specs(create_secrets=False)
    if service:
        app.stack.select(specs, (service,))
        routers = [specs[service]] if specs[service].router is not None else []
        if not routers:
            raise UsageError(f"service '{service}' is not a router (mode = \"router\")",
                             hint="models ps/load/unload drive a llama.cpp router service")
        return routers
    routers = [s for s in specs.values() if s.router is not None and s.enabled]
    if not routers:
        raise UsageError("no enabled llama.cpp router service in the config",
                         hint="set mode = \"router\" and [services.NAME.models.ID] tables (docs/configuration.md)")
    return routers


@models.command("ps")
@service_option
@click.option("--json", "as_json", is_flag=True,
              help=f"A JSON list ({contract.MODELS_PS.help()}; why: why it is not loaded).")
@pass_app
def ps_cmd(app: Application, service: str | None, as_json: bool) -> None:
    """Models behind each router service and their state: loaded, loading, unloaded, sleeping, failed."""
    from airpods.health.router_api import list_models
    from airpods.orchestrate.running import serving_base

    rows = []
    for spec in _routers(app, service):
        models = list_models(serving_base(app.stack.runtime, spec), spec.env.get("LLAMA_API_KEY"))
        if models is None:
            raise UsageError(f"router service '{spec.name}' does not answer at {spec.base_url}",
                             hint=f"start it: airpods start {spec.name}")
        files = {**preset_on_disk(spec), **{m.id: m.file for m in spec.router.models}}  # `run` adds to the preset
        own = {m.id: m for m in spec.router.models}
        rows += [{**m.to_json(spec.name), "file": m.file or files.get(m.id), "why": _why_not_loaded(spec, m, models),
                  "role": own[m.id].role if m.id in own else "chat", "draft": own[m.id].draft if m.id in own else None}
                 for m in models]
        listed, left_out = {m.id for m in models}, dict(spec.resident_left_out)
        rows += [{"service": spec.name, "id": m.id, "aliases": list(m.aliases), "state": "left out", "file": m.file,
                  "exit_code": None, "why": left_out[m.id], "role": m.role, "draft": m.draft}
                 for m in spec.router.models if m.id in left_out and m.id not in listed]
    if as_json:
        app.terminal.print_json(rows, contract.MODELS_PS)
        return
    app.terminal.table(["SERVICE", "ID", "ROLE", "ALIASES", "STATE", "FILE", "WHY"],
                       [[r["service"], r["id"], r["role"], ", ".join(r["aliases"]) or "-", r["state"],
                         (r["file"] or "-") + (f" (draft {r['draft']})" if r["draft"] else ""), r["why"] or "-"]
                        for r in rows])


def _why_not_loaded(spec, model, models: list) -> str | None:
    """Why a router's model is not in memory: left out by the resident plan (with the numbers), its
    idle time ran out, or the loaded ones fill max_loaded."""
    if model.state in ("loaded", "loading"):
        return None
    left_out = dict(spec.resident_left_out)
    if model.id in left_out:
        return left_out[model.id]
    own = next((m for m in spec.router.models if m.id == model.id), None)
    if model.state == "sleeping":
        ttl = own.ttl if own is not None and own.ttl else spec.router.idle_unload
        return f"idle for {ttl} s: unloaded until the next request" if ttl else "idle: unloaded until the next request"
    loaded = sum(1 for m in models if m.state in ("loaded", "loading"))
    limit = spec.router.max_loaded or 4
    if loaded >= limit:
        return f"max_loaded = {limit} are loaded" + (f" ({spec.resident_why})" if spec.resident_why else "")
    return "not requested yet" if model.state == "unloaded" else None


def _drive(app: Application, model: str, service: str | None, unload: bool) -> None:
    from airpods.health.router_api import list_models, load
    from airpods.orchestrate.running import served, serving

    for spec in _routers(app, service):
        known = spec.router.ids()
        found = serving(app.stack.runtime, spec)  # a keyed request only to the router's own published port
        live = list_models(found[0], spec.env.get("LLAMA_API_KEY")) if found[0] else None
        if live is not None:
            known.update({m.id: m.id for m in live})
        if model in known:
            base = served(spec, found)
            load(base, spec.env.get("LLAMA_API_KEY"), known[model], unload=unload)
            settle(app, spec, base, known[model], unload)
            app.terminal.success(f"{spec.name}: {'unloaded' if unload else 'loaded'} {known[model]}")
            return
    names = sorted({n for spec in _routers(app, service) for n in spec.router.ids()})
    raise UsageError(f"no router service has a model called {model!r}",
                     hint=f"models: {', '.join(names) or 'see airpods models ps'}")


@models.command("load")
@click.argument("model")
@service_option
@pass_app
def load_cmd(app: Application, model: str, service: str | None) -> None:
    """Load MODEL (an id or alias) in its router now, instead of on its first request."""
    _drive(app, model, service, unload=False)


@models.command("unload")
@click.argument("model")
@service_option
@pass_app
def unload_cmd(app: Application, model: str, service: str | None) -> None:
    """Unload MODEL (an id or alias) from its router, freeing its memory."""
    _drive(app, model, service, unload=True)

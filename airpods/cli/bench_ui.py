"""What `airpods bench` does around the measure (bench/measure.py): the service it needs started
(and stopped after), what it ran on, the prediction it is checked against, the history."""

from __future__ import annotations

import time
from typing import Any

from airpods.cli.application import Application
from airpods.errors import UsageError
from airpods.kinds import kind_of


def run_bench(app: Application, target: str | None, *, prompt_tokens: int, gen_tokens: int, parallel: int,
              repeat: int, keep: bool, table: bool = True) -> dict[str, Any]:
    from airpods.bench import history, measure
    from airpods.orchestrate.running import serving, serving_base

    specs = app.stack.specs()  # with its secrets: the bench may start the service
    spec, model_id, model, to_run = llama_target(app, specs, target)
    was_running = serving(app.stack.runtime, spec)[0] is not None
    spec, model_id, model, undo = _ready(app, specs, spec, model_id, model, to_run, was_running)
    try:
        base, key = serving_base(app.stack.runtime, spec), spec.env.get("LLAMA_API_KEY")
        say = lambda i, n: app.terminal.info(f"bench {model} in {spec.name}: round {i} of {n}")  # noqa: E731
        figures = measure.bench(base, key, model_id, prompt_tokens=prompt_tokens, gen_tokens=gen_tokens,
                                parallel=parallel, repeat=repeat, progress=say)
        record = _record(app, spec, model, model_id, figures, repeat)
    finally:
        if not keep:
            undo()
    before = history.load(app.environ)
    history.append(app.environ, record)
    slower = history.flagged([*before, record]).get(len(before))
    if slower is not None:
        record["slower"] = slower
    _say(app, record, table)
    return record


def llama_target(app: Application, specs: dict, target: str | None) -> tuple:
    """(the llama.cpp spec, the model id a router is asked for or None, the model file, a model
    that must be started first) for TARGET."""
    from airpods.stack.targets import default_llama

    if target is None or (target in specs and kind_of(specs[target].kind).llama_server):
        spec = _default(app, specs) if target is None else specs[target]
        if spec.router is not None:
            models = {m.id: m for m in spec.router.models}
            mid = spec.default_model if spec.default_model in models else next(iter(models), None)
            if mid is None:
                raise UsageError(f"router {spec.name} lists no model of its own to bench", hint="airpods bench MODEL")
            return spec, mid, models[mid].file, None
        return spec, None, spec.run.model_in_volume, None
    if target in specs:
        raise UsageError(f"service '{target}' is a {specs[target].kind} service; bench measures llama.cpp",
                         hint="airpods bench LLAMA_SERVICE or MODEL")
    for spec in specs.values():
        if kind_of(spec.kind).llama_server and spec.enabled and spec.router is not None:
            for m in spec.router.models:
                if target in (m.id, m.file, *m.aliases):
                    return spec, m.id, m.file, None
    same = [s for s in specs.values() if kind_of(s.kind).llama_server and s.enabled and s.router is None
            and s.run.model_in_volume == target]
    if same:
        return same[0], None, target, None
    return default_llama(app.stack, specs, None), None, target, target


def _default(app: Application, specs: dict):
    """The llama.cpp service a bench without a target measures: `chat`'s when it is enabled, else
    the only enabled one; several: the user names one."""
    from airpods.stack.targets import default_llama

    chosen = default_llama(app.stack, specs, None)
    if chosen.enabled:
        return chosen
    enabled = [n for n, s in specs.items() if s.enabled and kind_of(s.kind).llama_server]
    if len(enabled) != 1:
        raise UsageError("which llama.cpp service should the bench measure? " +
                         (f"enabled: {', '.join(enabled)}" if enabled else "none is enabled"),
                         hint="airpods bench SERVICE (or MODEL)")
    return specs[enabled[0]]


def _ready(app: Application, specs: dict, spec, model_id, model, to_run, was_running: bool) -> tuple:
    """The spec serving the model now, and what puts things back as they were after the bench."""
    from airpods.cli.commands.run import _on_router, _on_single, _start

    def nothing() -> None:
        return None

    def stop() -> None:
        from airpods.orchestrate.stop import stop_services

        stop_services(app.stack.runtime, app.stack.project, specs, [spec.name], timeout=None, remove=False)
        app.terminal.info(f"stopped {spec.name}, which the bench started (--keep leaves it running)")

    if to_run is None:
        if was_running:
            return spec, model_id, model, nothing
        app.terminal.info(f"starting {spec.name} for the bench")
        _start(app, specs, spec.name, None, False)
        return spec, model_id, model, stop
    from airpods.cli.run_model import ensure_model

    model = ensure_model(app, specs, spec, to_run, "main", force=False)
    if spec.router is not None:
        running, mid = _on_router(app, spec, model, cpu=False, timeout=None, force=False)

        def unload() -> None:
            from airpods.health import router_api
            from airpods.orchestrate.running import serving_base

            router_api.load(serving_base(app.stack.runtime, running), running.env.get("LLAMA_API_KEY"), mid,
                            unload=True)
            app.terminal.info(f"unloaded {mid} from {running.name} (--keep leaves it loaded)")
        return running, mid, model, unload
    running = _on_single(app, spec, model, cpu=False, timeout=None, force=False)

    def restore() -> None:
        app.terminal.info(f"{spec.name} runs its own model again (--keep leaves {model} in it)")
        _start(app, app.stack.specs(), spec.name, None, False)
    return running, None, model, (restore if was_running else stop)


def _record(app: Application, spec, model: str, model_id: str | None, figures: Any, repeat: int) -> dict[str, Any]:
    """The run, with what it ran on and what was predicted for it."""
    import airpods
    from airpods.bench.machine import figures as machine_figures
    from airpods.models.hub_repo import quant_of
    from airpods.plan.memory import estimate
    from airpods.plan.speed import kv_bytes, predict
    from airpods.stack.targets import probe_spec

    probe = probe_spec(spec, model) if model else spec
    shape = probe.llama.shape if probe.llama is not None else None
    facts = facts_of(app, spec, model)
    state = app.stack.runtime.inspect(spec.container)
    inventory = app.stack.gpu_inventory
    device = "cpu" if not spec.gpus else "gpu:" + ",".join(g.name for g in inventory if g.index in spec.gpus)
    cells = figures.prompt_tokens + figures.gen_tokens // 2
    kv = kv_bytes(facts, shape, cells) if facts and shape else 0.0
    threads = spec.threads
    predicted = predict(facts, shape, machine_figures(app.environ, device=device, threads=threads), cells) \
        if facts and shape else None
    return {"at": time.time(), "model": model, "model_id": model_id, "service": spec.name,
            "quant": quant_of(model or ""), "device": device, **figures.to_json(), "repeat": repeat,
            "memory_bytes": _memory(app, spec.container),
            "estimate_bytes": estimate(facts, shape).total if facts and shape else None,
            "predicted_generation_tokens_per_s": predicted and predicted.to_json()["generation_tokens_per_s"],
            "predicted_prompt_tokens_per_s": predicted and predicted.to_json()["prompt_tokens_per_s"],
            "prediction_basis": predicted.basis if predicted else None,
            "flags": {"ctx": shape.ctx if shape else None, "threads": threads,
                      "gpu_layers": probe.llama.gpu_layers if probe.llama else None,
                      "cache_k": shape.cache_k if shape else None, "cache_v": shape.cache_v if shape else None,
                      "parallel": shape.parallel if shape else None},
            "image": state.image if state else spec.image, "image_digest": state.image_id if state else None,
            "cpu": _cpu_name(), "gpus": [g.name for g in inventory if g.index in spec.gpus],
            "driver": next((g.driver for g in inventory if g.driver), None),
            "airpods_version": airpods.__version__, "weights": facts.weights if facts else None, "kv_bytes": kv,
            **_vram(app, state)}


def _vram(app: Application, state) -> dict[str, Any]:
    """{"vram": {GPU index: bytes}} its processes hold, from nvidia-smi, on a machine with NVIDIA GPUs."""
    inventory = app.stack.gpu_inventory
    if not inventory or state is None:
        return {}
    from airpods.probes.gpu import ProbeEnv
    from airpods.probes.gpu_procs import vram_by_container

    held = vram_by_container(ProbeEnv.from_environ(app.environ), {g.uuid: g.index for g in inventory})
    return {"vram": {str(i): n for i, n in sorted(held.get(state.id, {}).items())}}


def _memory(app: Application, container: str) -> int | None:
    """The most the container used (its cgroup's peak, which covers the bench's requests and the
    model's load), else what it uses now."""
    rt = app.stack.runtime
    return rt.memory_peak(container) or rt.memory_usage(container)


def facts_of(app: Application, spec, model: str | None):
    from airpods.orchestrate.memory_check import model_facts
    from airpods.stack.targets import store_for

    root = store_for(app.stack, spec).root(create=False)
    return model_facts(root, model, app.stack.facts_cache) if root is not None and model else None


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _say(app: Application, r: dict[str, Any], table: bool) -> None:
    from airpods.plan.memory import human

    t = app.terminal
    if table:  # not with --json: stdout is the JSON's
        t.table(["MODEL", "PROMPT T/S", "GEN T/S", "FIRST TOKEN", "PREDICTED GEN", "MEMORY", "ESTIMATE"],
                [[r["model"], _num(r["prompt_tokens_per_s"]), _num(r["generation_tokens_per_s"]),
                  _num(r["first_token_ms"], "{:.0f} ms"), _num(r["predicted_generation_tokens_per_s"]),
                  human(r["memory_bytes"]) if r["memory_bytes"] else "-",
                  human(r["estimate_bytes"]) if r["estimate_bytes"] else "-"]],
                title=f"{r['service']}: {r['prompt_tokens']} prompt + {r['gen_tokens']} answer tokens, "
                      f"{r['parallel']} at once, median of {r['repeat']}")
    if r.get("draft_acceptance") is not None:
        t.info(f"draft tokens accepted: {100 * r['draft_acceptance']:.0f} %")
    if r.get("slower"):
        s = r["slower"]
        t.warning(f"{s['drop_percent']:.0f} % slower than the previous run of {r['model']} with the same settings "
                  f"({s['previous']:.1f} tokens/s)" + (f": {', '.join(s['changed'])}" if s["changed"] else ""))
    t.detail(f"recorded in the bench history: airpods bench --history {r['model']}")


def show(app: Application, target: str | None, *, as_json: bool, export_as: str | None) -> None:
    """The history: a row per run (flagged when slower), and a chart per model."""
    from datetime import datetime

    import click

    from airpods.bench import history
    from airpods.cli import contract

    everything = history.load(app.environ)
    slow = history.flagged(everything)  # against the whole history, then picked
    picked = []
    for i, r in enumerate(everything):
        if target is None or target in (r.get("model"), r.get("model_id")):
            picked.append({**r, "slower": slow[i]} if i in slow else r)
    if export_as == "csv":
        click.echo(history.as_csv(picked), nl=False)
        return
    if as_json:
        app.terminal.print_json(picked, contract.BENCH._replace(rows=True))
        return
    if not picked:
        app.terminal.info("no bench runs" + (f" of {target}" if target else "") + " yet: airpods bench")
        return
    app.terminal.table(
        ["WHEN", "MODEL", "QUANT", "THREADS", "PROMPT T/S", "GEN T/S", "PREDICTED", "FLAG"],
        [[datetime.fromtimestamp(r["at"]).strftime("%Y-%m-%d %H:%M"), r["model"], r.get("quant") or "-",
          (r.get("flags") or {}).get("threads") or "-", _num(r.get("prompt_tokens_per_s")),
          _num(r.get("generation_tokens_per_s")), _num(r.get("predicted_generation_tokens_per_s")),
          f"{r['slower']['drop_percent']:.0f}% slower: {', '.join(r['slower']['changed']) or 'same settings'}"
          if r.get("slower") else ""] for r in picked])
    by_model: dict[str, list[float]] = {}
    for r in picked:
        if r.get("generation_tokens_per_s"):
            by_model.setdefault(r["model"], []).append(r["generation_tokens_per_s"])
    for name, values in by_model.items():
        app.terminal.print(f"{name}  {history.sparkline(values)}  generation tokens/s, {len(values)} runs, "
                           f"last {values[-1]:.1f}")

"""`airpods top`: what the machine is doing, live."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.kinds import kind_of

COLUMNS = ["SERVICE", "MODEL", "STATE", "REQ", "WAIT", "PROMPT T/S", "GEN T/S", "KV", "SLOTS", "CPU", "MEM", "VRAM"]


@click.command()
@click.argument("services", nargs=-1)
@click.option("--once", is_flag=True, help="Print one table and exit.")
@click.option("--json", "as_json", is_flag=True,
              help=f"Print one snapshot as a JSON list and exit ({contract.TOP.help()}; docs/monitoring.md "
                   "says what each is).")
@click.option("--interval", type=click.FloatRange(min=0.2), metavar="SECONDS",
              help="Time between readings; rates are over this interval (default: 2 live, 1 with --once/--json).")
@pass_app
def top(app: Application, services: tuple[str, ...], once: bool, as_json: bool, interval: float | None) -> None:
    """Live view of the llama.cpp services (a router: one row per loaded model) and the gateway.

    \b
    REQ/WAIT: requests being processed / waiting for a slot. PROMPT T/S, GEN T/S: tokens per
    second over the last interval, from llama-server's counters and its busy slots. KV: the
    context the busy slots hold, of all slots' context. SLOTS: busy/total. CPU, MEM: from Podman.
    VRAM per GPU, from nvidia-smi (blank without a GPU). The gateway's row: requests per second
    and who used it in the last minute. The hub's row: requests per second it routed; below it a
    row per host: up or down by the hub's health checks, requests per second, the last minute's
    requests, errors and median time, from the hub's own log (tokens/s per host: that host's own
    `airpods top`). A service that does not answer says why in its row.
    Needs llama-server's metrics, on by default (services.NAME.metrics = false turns them off).

    \b
    Examples:
      airpods top
      airpods top llamacpp --once
      airpods top --json | jq '.[] | {service, model, generation_tokens_per_s}'
    """
    specs = app.stack.specs(create_secrets=False)
    names = _names(app, specs, services)
    running = {r.service: r for r in app.stack.running() if not r.state.infra}
    vram = _vram_probe(app)
    from airpods.monitor.stack import gather

    if as_json or once:
        rows, _ = gather(app.stack.runtime, specs, running, names, interval=interval or 1.0, vram=vram)
        if as_json:
            app.terminal.print_json(rows, contract.TOP)
        else:
            app.terminal.table(COLUMNS, [_cells(r) for r in rows])
            _notes(app, rows)
        return
    _live(app, specs, names, interval or 2.0, vram)


def _names(app: Application, specs: dict, services: tuple[str, ...]) -> list[str]:
    from airpods.errors import UsageError

    if services:
        chosen = app.stack.select(specs, services, enabled_only=False)
        other = [n for n in chosen if not kind_of(specs[n].kind).top]
        if other:
            raise UsageError(f"top shows llama.cpp services, the gateway and the hub; {', '.join(other)} is none "
                             "of them",
                             hint="see its state with airpods status")
        return chosen
    return [n for n, s in specs.items() if kind_of(s.kind).top and s.enabled]


def _vram_probe(app: Application):
    """VRAM per container and GPU, when this machine has NVIDIA GPUs; None elsewhere (blank column)."""
    if not app.stack.gpu_inventory:
        return None
    from airpods.probes.gpu import ProbeEnv
    from airpods.probes.gpu_procs import vram_by_container

    env = ProbeEnv.from_environ(app.environ)
    by_uuid = {g.uuid: g.index for g in app.stack.gpu_inventory}
    return lambda: vram_by_container(env, by_uuid)


def _gib(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**30:.1f}G" if n >= 2**30 else f"{n / 2**20:.0f}M"


def _num(v, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _cells(r: dict) -> list[str]:
    model = r["model"] or ("" if r.get("models_loaded") is None else f"({r['models_loaded']} loaded)")
    if r["kind"] == "host":
        took = "" if r.get("median_ms") is None else f", median {r['median_ms']} ms"
        last = f"last min: {r['requests_last_minute']} req, {r['errors_last_minute']} err{took}"
        return [f"  host {r['service']}", r["why"] or last, r["state"], _num(r.get("requests_per_s"), "{:.1f}/s"),
                *[""] * 8]
    if kind_of(r["kind"]).model_router:
        return [r["service"], r["why"] or f"last min: {r.get('requests_last_minute') or 0} req", r["state"],
                _num(r.get("requests_per_s"), "{:.1f}/s"), *[""] * 5, _num(r["cpu_percent"], "{:.0f}%"),
                _gib(r["memory_bytes"]), ""]
    if kind_of(r["kind"]).door:
        people = ", ".join(r.get("people_active") or []) or "-"
        return [r["service"], f"people: {people}", r["state"], _num(r.get("requests_per_s"), "{:.1f}/s"), "", "",
                "", "", "", _num(r["cpu_percent"], "{:.0f}%"), _gib(r["memory_bytes"]), ""]
    if r["why"]:
        return [r["service"], model, r["state"], r["why"], *[""] * 5, _num(r["cpu_percent"], "{:.0f}%"),
                _gib(r["memory_bytes"]), _vram_text(r)]
    slots = "-" if r.get("slots_total") is None else f"{r['slots_busy']}/{r['slots_total']}"
    return [r["service"], model, r["state"], _num(r.get("requests_processing"), "{:d}"),
            _num(r.get("requests_deferred"), "{:d}"), _num(r.get("prompt_tokens_per_s")),
            _num(r.get("generation_tokens_per_s")), _num(r.get("kv_cache_used_percent"), "{:.0f}%"), slots,
            _num(r["cpu_percent"], "{:.0f}%"), _gib(r["memory_bytes"]), _vram_text(r)]


def _vram_text(r: dict) -> str:
    return " ".join(f"{gpu}:{_gib(size)}" for gpu, size in (r.get("vram") or {}).items())


def _notes(app: Application, rows: list[dict]) -> None:
    for r in rows:
        if r.get("draft_acceptance") is not None:
            app.terminal.detail(f"{r['service']}{'/' + r['model'] if r['model'] else ''}: the target accepted "
                                f"{100 * r['draft_acceptance']:.0f} % of its draft model's tokens (since it started)")
        for s in r.get("slots") or []:
            app.terminal.detail(f"{r['service']}{'/' + r['model'] if r['model'] else ''} slot {s['id']}: "
                                f"{s['tokens']} of {s['n_ctx']} tokens of context")


def _live(app: Application, specs: dict, names: list[str], interval: float, vram) -> None:
    import time

    from rich.live import Live

    from airpods.monitor.stack import gather

    previous = None
    with Live(console=app.terminal.out_console, auto_refresh=False, screen=False) as live:
        while True:
            running = {r.service: r for r in app.stack.running() if not r.state.infra}
            rows, previous = gather(app.stack.runtime, specs, running, names, interval=interval, previous=previous,
                                    vram=vram)
            table = app.terminal.rich_table(COLUMNS, [_cells(r) for r in rows],  # text, never markup
                                            title=f"airpods top — every {interval:g}s, Ctrl-C to leave")
            live.update(table, refresh=True)
            time.sleep(interval)

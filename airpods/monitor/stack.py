"""One round of `airpods top` over a project's services: which endpoints to read (a router's
loaded models each), the containers' CPU and memory, VRAM per GPU, the gateway's traffic; rows
with stable keys. The previous round's readings are passed back in, so a live view reads each
endpoint once per interval and its rates cover exactly that interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airpods.kinds import kind_of
from airpods.monitor.top import LLAMA_FIELDS, Watch, gateway_figures, llama_rows
from airpods.runtime.port import ContainerRuntime, ContainerUsage


@dataclass
class Round:
    """What one round read, for the next: endpoint readings and container counters."""

    readings: dict = field(default_factory=dict)
    usage: dict[str, ContainerUsage] = field(default_factory=dict)
    at: float = 0.0


def _watches(spec: Any, have: Any) -> tuple[list[Watch], str | None]:
    """The endpoints of a running llama.cpp service: itself, or each model its router has loaded;
    read only on a port Podman says its container publishes (its key goes nowhere else)."""
    if have is None or not have.state.running:
        return [], None
    base = spec.base_url
    if not base:
        return [], "it publishes no port on this machine"
    if not spec.publishes_on(have.state.ports):
        return [], f"its container does not publish {base} (the config changed since it started)"
    key = spec.env.get("LLAMA_API_KEY")
    if spec.router is None:
        return [Watch(spec.name, base, key, unified=spec.llama is not None and spec.llama.shape.kv_unified)], None
    from airpods.health.router_api import list_models
    from airpods.plan.memory import shape_from_argv
    from airpods.plan.router import model_argv

    models = list_models(base, key)
    if models is None:
        return [], f"the router does not answer at {base}"
    return [Watch(spec.name, base, key, m.id, shape_from_argv(model_argv(spec.router, m.id)).kv_unified)
            for m in models if m.state == "loaded"], None


def gather(runtime: ContainerRuntime, specs: dict[str, Any], running: dict[str, Any], names: list[str], *,
           interval: float, previous: Round | None = None, vram: Callable[[], dict[str, dict[int, int]]] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> tuple[list[dict[str, Any]], Round]:
    """Rows for `names` (llama.cpp services and gateways) and this round's readings. `running`:
    service -> its container as Podman has it (orchestrate/running.py), absent when none exists."""
    rows: list[dict[str, Any]] = []
    watches: list[Watch] = []
    for name in names:
        spec, have = specs[name], running.get(name)
        state = have.state.state if have is not None else "absent"
        row: dict[str, Any] = {"service": name, "model": None, "kind": spec.kind, "state": state,
                               "container": have.container if have is not None else spec.container,
                               "why": _why_down(have), "cpu_percent": None, "memory_bytes": None, "vram": {}}
        if kind_of(spec.kind).llama_server:
            row.update(dict.fromkeys(LLAMA_FIELDS))
            mine, why = _watches(spec, have)
            row["why"] = row["why"] or why
            if spec.router is not None:
                row["models_loaded"] = len(mine)
            watches += mine
        rows.append(row)
    live = [r["container"] for r in rows if r["state"] == "running"]
    first, previous = previous is None, previous or Round()
    counters_before = previous.usage or runtime.resource_usage(live)
    if first and live and not watches:
        sleep(interval)  # CPU % needs two readings an interval apart (llama_rows waits when it reads)
    llama, readings = llama_rows(watches, interval, sleep, previous.readings)
    counters = runtime.resource_usage(live)
    now = time.time()
    held = vram() if vram is not None else {}
    by_service = {r["service"]: r for r in rows}
    for row in rows:
        c, b = counters.get(row["container"]), counters_before.get(row["container"])
        if c is not None:
            row["memory_bytes"] = c.memory
            cpu = c.cpu_percent(b) if b is not None else None
            row["cpu_percent"] = None if cpu is None else round(cpu, 1)
        have = running.get(row["service"])
        if have is not None and have.state.id in held:
            row["vram"] = {str(gpu): size for gpu, size in sorted(held[have.state.id].items())}
        if kind_of(row["kind"]).door and row["state"] == "running":
            row.update(_gateway(runtime, row["container"], now, interval))
    hosted = {row["service"]: _hub(runtime, specs[row["service"]], row, now, interval) for row in rows
              if kind_of(row["kind"]).model_router and row["state"] == "running"}
    for r in llama:
        target = by_service[r["service"]]
        if r["model"] is None:
            target.update({k: v for k, v in r.items() if k not in ("service", "model", "why")})
            target["why"] = target["why"] or r["why"]
        else:
            rows.append({"service": r["service"], "model": r["model"], "kind": "llamacpp-model", "state": "loaded",
                         "container": target["container"], "cpu_percent": None, "memory_bytes": None, "vram": {},
                         **{k: v for k, v in r.items() if k not in ("service", "model")}})
    rows.sort(key=lambda r: (r["service"], r["model"] or ""))
    for hub, its in hosted.items():  # a hub's hosts right below it
        at = next(i for i, r in enumerate(rows) if r["service"] == hub and r["model"] is None)
        rows[at + 1:at + 1] = its
    return rows, Round(readings, counters, now)


def _why_down(have: Any) -> str | None:
    if have is None:
        return "not created (airpods start)"
    st = have.state
    if st.running:
        return None
    if st.state == "exited":
        return "out of memory" if st.oom_killed else f"exited with code {st.exit_code}"
    return "stopped"


def _hub(runtime: ContainerRuntime, spec: Any, row: dict[str, Any], now: float, interval: float) -> list[dict]:
    """The hub's row gets its requests per second; each of its hosts a row of its own."""
    from airpods.errors import AirpodsError
    from airpods.monitor.hub_log import host_rows, members

    try:
        lines = list(runtime.logs(row["container"], tail=5000))
    except AirpodsError as exc:
        row["why"] = exc.message
        return []
    seen = members(lines, now, interval)
    row["requests_per_s"] = round(sum(m.recent for m in seen.values()) / max(interval, 1e-6), 2)
    row["requests_last_minute"] = sum(m.minute for m in seen.values())
    return host_rows(spec, row["container"], seen, interval)


def _gateway(runtime: ContainerRuntime, container: str, now: float, interval: float) -> dict[str, Any]:
    from airpods.errors import AirpodsError

    try:
        lines = list(runtime.logs(container, tail=5000))
    except AirpodsError as exc:
        return {"requests_per_s": None, "requests_last_minute": None, "people_active": [], "why": exc.message}
    return gateway_figures(lines, now, interval)

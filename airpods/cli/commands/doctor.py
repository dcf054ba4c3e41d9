"""`airpods doctor`: what airpods sees on this machine, and what to fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.errors import AirpodsError
from airpods.kinds import kind_of


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help=f"Print the findings as one JSON object ({contract.DOCTOR.help()}).")
@pass_app
def doctor(app: Application, as_json: bool) -> None:
    """Check Podman, the API socket, the network backend, GPU detection and the CPU plan.

    Shows rootful or rootless and which cgroup limits the engine enforces, every GPU probe with
    its reason, each llama.cpp service's CPUs and threads, and the image each service would use.
    Exits 1 when Podman cannot be used.
    """
    report, problem, specs = _findings(app)
    if as_json:
        app.terminal.print_json(report, contract.DOCTOR)
    else:
        _print_machine(app.terminal, report, problem, app.stack.cpu_topology)
        _print_stack(app.terminal, report, specs)
    if problem is not None:
        raise problem
    if "config_error" in report:
        raise click.exceptions.Exit(1)


def _findings(app: Application) -> tuple[dict, AirpodsError | None, dict]:
    """(the report, why Podman cannot be used or None, the specs) as --json prints it."""
    from airpods.probes.gpu import ProbeEnv, detect

    report: dict = {"podman": None, "socket": None, "network_backend": None, "probes": [], "services": {},
                    "gateway": None, "health": None, "containers": []}  # the last three need a config that loads
    podman = shutil.which("podman", path=app.environ.get("PATH"))
    report["podman"] = podman
    problem = None
    try:
        runtime = app.stack.runtime
        report["socket"] = {"url": runtime.url, "from": runtime.origin, "version": runtime.ping()}
        limits = runtime.limit_support()
        report["engine"] = {"mode": limits.mode, "cgroup_version": limits.cgroup_version,
                            "limits_enforced": sorted(limits.controllers), "note": limits.describe(),
                            "implications": limits.implications}
    except AirpodsError as exc:
        problem = exc
    topo = app.stack.cpu_topology
    report["cpu"] = {"cpus": list(topo.cpus), "quota": topo.quota, "usable": len(topo.usable), "plan": {}}
    if podman:
        out = subprocess.run([podman, "info", "--format", "{{.Host.NetworkBackend}}"],  # noqa: S603
                             capture_output=True, text=True, timeout=30, check=False)
        report["network_backend"] = out.stdout.strip() or None
    for r in detect(ProbeEnv.from_environ(app.environ)):
        report["probes"].append({"probe": r.probe, "variant": r.variant, "reason": r.reason,
                                 "devices": list(r.devices), "warning": r.warning})
    report["gpus"] = [g.to_json() for g in app.stack.gpu_inventory]
    report["speed"] = _speed(app)
    specs: dict = {}
    try:
        specs = app.stack.specs(create_secrets=False)
        for g in report["gpus"]:  # which services the GPU plan puts on each GPU
            g["services"] = [n for n, s in specs.items() if s.enabled and g["index"] in s.gpus]
        report["services"] = {n: {"enabled": s.enabled, "variant": s.variant, "image": s.image,
                                  "devices": list(s.devices), "gpus": list(s.gpus), "gpu_layers": s.gpu_layers,
                                  "gpu_plan": s.gpu_plan} for n, s in specs.items()}
        report["cpu"]["plan"] = {n: {"cpuset": s.cpuset, "threads": s.threads, "reason": s.cpu_reason}
                                 for n, s in specs.items() if s.enabled and (s.cpuset or s.threads)}
        report["gateway"] = _gateway(app, specs)
        report["health"] = _health(app, specs)
        report["containers"] = _confinement(app) if problem is None else []
    except AirpodsError as exc:
        report["config_error"] = exc.message
    return report, problem, specs


def _speed(app: Application) -> dict:
    """This machine's memory bandwidth, measured now and stored for the speed predictions, and
    what those predictions rest on (its benches, when there are some)."""
    import contextlib

    from airpods.bench.machine import figures, measure_bandwidth, store_bandwidth

    bandwidth = measure_bandwidth()
    with contextlib.suppress(OSError):  # a read-only data folder: the predictions use the benches alone
        store_bandwidth(app.environ, bandwidth)
    machine = figures(app.environ)
    return {"memory_bandwidth": round(bandwidth), "benches": machine.samples, "prediction_basis": machine.basis,
            "prediction_bandwidth": round(machine.bandwidth) if machine.bandwidth else None}


def _print_machine(t, report: dict, problem: AirpodsError | None, topo) -> None:
    """Podman, its socket and engine, the network backend, the GPU probes and GPUs, the CPU plan."""
    t.print(f"podman:          {report['podman'] or 'not found'}")
    sock = report["socket"]
    t.print("api socket:      " + (f"{sock['url']} ({sock['from']}), Podman {sock['version']}" if sock
                                   else f"unusable: {problem.message if problem else '?'}"))
    if report.get("engine"):
        t.print(f"engine:          {report['engine']['note']}")
        for line in report["engine"]["implications"]:
            t.print(f"                 {line}")
    backend = report["network_backend"]
    t.print(f"network backend: {backend or 'unknown'}" + (
        "  (CNI: network aliases need netavark + aardvark-dns)" if backend == "cni" else ""))
    t.print("gpu probes:")
    for p in report["probes"]:
        mark = "✓" if p["variant"] else "-"
        t.print(f"  {mark} {p['probe']:<7} {p['reason']}")
    if report["gpus"]:
        from airpods.plan.memory import human

        t.table(["GPU", "NAME", "MEMORY", "FREE", "SERVICES (GPU plan)"],
                [[g["index"], g["name"], human(g["memory_total"]), human(g["memory_free"]),
                  ", ".join(g.get("services") or []) or "-"] for g in report["gpus"]])
    t.print(f"cpu:             {topo.describe()}; {len(topo.usable)} usable by the CPU plan")
    speed = report["speed"]
    t.print(f"memory:          {speed['memory_bandwidth'] / 1e9:.1f} GB/s (one thread copying); speed predictions: "
            f"{speed['prediction_basis']}")
    for name, share in report["cpu"]["plan"].items():
        t.print(f"  {name:<14} cpuset {share['cpuset'] or 'any':<7} threads {share['threads'] or '-':<3} "
                f"{share['reason']}")


def _print_stack(t, report: dict, specs: dict) -> None:
    """Each service's image, health checks and the watcher, the gateway, what each container may do."""
    t.print("services (image this machine would use):")
    for name, s in report["services"].items():
        state = "" if s["enabled"] else "  (disabled)"
        t.print(f"  {name:<14} {s['variant']:<7} {s['image']}{state}")
        if s["gpu_plan"]:
            t.print(f"  {'':<14} {specs[name].gpu_text}: {s['gpu_plan']}")
    if report.get("health"):
        h = report["health"]
        watcher = (f"running, pid {h['watcher_pid']}" if h["watcher_pid"]
                   else "not running (airpods start leaves one)")
        t.print(f"health checks:   {h['runs_checks']}; watcher {watcher}")
        w = h.get("watcher") or {}
        if "cpu_percent" in w:
            t.print(f"  {'':<14} CPU {w['cpu_seconds']:.2f} s over the last {w['over_seconds']:.0f} s "
                    f"({w['cpu_percent']:.2f} % of a core); {w['events']} Podman events")
        if w.get("next"):
            t.print(f"  {'':<14} next: {w['next']['what']} in {w['next']['in_seconds']:.0f} s")
    for gw in [report["gateway"]] if report.get("gateway") and report["gateway"]["enabled"] else []:
        t.print(f"gateway:         {gw['url']} ({'enabled' if gw['enabled'] else 'disabled'}), routes "
                + ", ".join(f"{p} -> {s}" for p, s in gw["routes"].items()) + f"; {gw['keys']} key(s)")
        if gw["beyond_loopback"]:
            t.warning(f"the gateway listens on {gw['listen']}: reachable from other machines; start refuses "
                      "it while no key is defined (airpods keys add NAME)")
    if report.get("containers"):
        t.print("containers (what each may do; effective: what the kernel says its main process has):")
        t.table(["SERVICE", "CONTAINER", "EFFECTIVE CAPS", "NO NEW PRIVS", "ROOT", "TMPFS", "INIT"],
                [[c["service"], c["container"],
                  "none" if c["effective_caps"] == [] else " ".join(c["effective_caps"] or ["?"]),
                  _yes(c["no_new_privileges"]), "read-only" if c["read_only"] else "writable",
                  " ".join(c["tmpfs"]) or "-", _yes(c["init"])] for c in report["containers"]])
    for p in report["probes"]:
        if p["warning"]:
            t.warning(p["warning"])
    if "config_error" in report:
        t.error(f"config: {report['config_error']} (run `airpods config validate`)")


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _confinement(app: Application) -> list[dict]:
    """Each running container of the project: what Podman gave it (inspect) and what the kernel
    says its main process may do (/proc: effective capabilities, no_new_privs)."""
    from airpods.probes.caps import main_process, privileges

    out = []
    for r in app.stack.running():
        state = app.stack.runtime.inspect(r.container) if r.state.running else None
        if state is None or not state.running:
            continue
        c, seen = state.confinement, privileges(main_process(state.pid))  # 0 (unknown): None
        out.append({"service": r.service, "container": r.container,
                    "effective_caps": list(seen.effective) if seen is not None else None,
                    "no_new_privileges": seen.no_new_privileges if seen is not None else (
                        c.no_new_privileges if c is not None else None),
                    "read_only": bool(c and c.read_only), "tmpfs": [p for p, _ in c.tmpfs] if c else [],
                    "cap_drop": list(c.cap_drop) if c else [], "cap_add": list(c.cap_add) if c else [],
                    "init": c.init if c is not None else None})
    return out


def _health(app: Application, specs: dict) -> dict:
    """Who runs the health checks here (systemd timers, or airpods' watcher), and the watcher."""
    import os

    from airpods.paths import health_ledger
    from airpods.probes.systemd import timers_available

    project = next((s.project for s in specs.values()), app.stack.project)
    timers = timers_available(app.environ, os.geteuid())
    pid_file = health_ledger(app.environ, project).with_suffix(".pid")
    try:
        pid = int(pid_file.read_text().strip() or 0)
        alive = pid > 0 and "watch" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        pid, alive = 0, False
    out = {"systemd_timers": timers, "watcher_pid": pid if alive else None,
           "runs_checks": "Podman, from systemd timers" if timers else
                          "airpods' watcher (no systemd timers here)"}
    if alive:
        out["watcher"] = _watcher_cost(pid, pid_file.with_name(pid_file.stem + ".state.json"))
    return out


def _watcher_cost(pid: int, state_file: Path) -> dict:
    """What the watcher costs and waits for: its CPU seconds over the last minute (from its own
    samples and /proc now), what it does next and when, and the Podman events it had."""
    import json
    import os
    import time

    try:
        state = json.loads(state_file.read_text())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_now = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return {}
    now = time.time()
    samples = [(float(t), float(c)) for t, c in state.get("cpu_samples") or [] if isinstance(t, (int, float))]
    older = [x for x in samples if x[0] <= now - 60] or samples[:1]
    out: dict = {"events": state.get("events"), "reconnects": state.get("reconnects")}
    if older:
        since, cpu_then = older[-1]
        out.update(cpu_seconds=round(max(0.0, cpu_now - cpu_then), 3), over_seconds=round(now - since, 1),
                   cpu_percent=round(100 * max(0.0, cpu_now - cpu_then) / max(now - since, 1e-6), 3))
    nxt = state.get("next") or {}
    if isinstance(nxt.get("at"), (int, float)):
        out["next"] = {"what": str(nxt.get("what", "")), "in_seconds": round(max(0.0, nxt["at"] - now), 1)}
    return out


def _gateway(app: Application, specs: dict) -> dict | None:
    """The gateway's URL, routes, listen address and key count (never a key)."""

    from airpods.gateway.keys import KeyStore
    from airpods.plan.gateway import loopback

    spec = next((s for s in specs.values() if kind_of(s.kind).door), None)
    if spec is None or not spec.ports:
        return None
    listen = spec.ports[0].host_ip
    return {"service": spec.name, "enabled": spec.enabled, "url": spec.url, "listen": listen,
            "beyond_loopback": not loopback(listen), "routes": dict(spec.gateway_routes),
            "keys": KeyStore.of(spec).count()}

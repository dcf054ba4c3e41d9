"""Checks that span services: duplicate host ports and aliases, unknown or cyclic depends_on."""

from __future__ import annotations

from typing import Any

from airpods.kinds import kind_of

Problem = tuple[tuple[str | int, ...], str]


def port_clashes(config: Any) -> list[tuple[str, int, str, int, str]]:
    """(service, port index, other service, host port, ip) for every two services that would publish
    the same host port, counting a non-llama.cpp port without `host` as its container port (llama.cpp
    ports without one are given free ones). Disabled services are included."""
    used: list[tuple[str, int, str]] = []
    out = []
    for name, svc in config.services.items():
        for i, port in enumerate(svc.ports):
            host = port.host or (port.container if not kind_of(svc.kind).llama_server else None)
            if host is None:
                continue
            for ip, number, owner in used:
                if number == host and (ip == port.host_ip or "0.0.0.0" in (ip, port.host_ip)):
                    out.append((name, i, owner, host, port.host_ip))
                    break
            used.append((port.host_ip, host, name))
    return out


def warnings(config: Any) -> list[str]:
    """What is valid now but fails once a disabled service is enabled."""
    return [f"services.{name}.ports[{i}]: host port {ip}:{host} is also used by service '{other}'; "
            f"enabling {'it' if not config.services[name].enabled else other} will fail at start"
            for name, i, other, host, ip in port_clashes(config)
            if not (config.services[name].enabled and config.services[other].enabled)]


def env_name(service: str) -> str:
    """How a service's name appears in the names of environment variables (the gateway's and
    Prometheus' key variables): upper case, anything but a letter or digit as '_'."""
    import re

    return re.sub(r"[^A-Z0-9]", "_", service.upper())


def crosscheck(config: Any) -> list[Problem]:
    problems: list[Problem] = []
    services = config.services
    aliases: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in services:  # team-a and team_a: one key variable, so one would get the other's key
        other = seen.setdefault(env_name(name), name)
        if other != name:
            problems.append((("services", name),
                             f"the name differs from service '{other}' only in '-', '_' or '.', so both would use "
                             f"one key variable (AIRPODS_BACKEND_KEY_{env_name(name)}); rename one of them"))
    for name, i, other, host, _ in port_clashes(config):
        if services[name].enabled and services[other].enabled:
            problems.append((("services", name, "ports", i, "host"),
                             f"host port {host} is also used by service '{other}'"))
    for name, svc in services.items():
        if not svc.enabled:
            continue
        for alias in svc.network_aliases or [name]:
            if alias in aliases:
                problems.append((("services", name, "network_aliases"),
                                 f"network alias '{alias}' is also used by service '{aliases[alias]}'"))
            aliases[alias] = name
        for dep in svc.depends_on:
            if dep not in services:
                close = [s for s in services if s.startswith(dep[:3])]
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append((("services", name, "depends_on"),
                                 f"depends on unknown service '{dep}'{hint}"))
            elif dep == name:
                problems.append((("services", name, "depends_on"), "a service cannot depend on itself"))
    problems += gateway_problems(config)
    problems += hub_problems(config)
    cycle = find_cycle({n: [d for d in s.depends_on if d in services and d != n]
                        for n, s in services.items()})
    if cycle:
        problems.append((("services", cycle[0], "depends_on"),
                         "dependency cycle: " + " -> ".join(cycle)))
    return problems


# First path segments the gateway or Open WebUI (behind it at /) use: no llama.cpp service is routed there.
RESERVED_PATHS = {"v1", "healthz", "api", "openai", "ollama", "static", "cache", "ws", "oauth", "assets", "health",
                  "manifest.json", "opensearch.xml", "docs", "favicon.png"}


def gateway_problems(config: Any) -> list[Problem]:
    """One gateway per config (its keys are the project's); `default` names a llama.cpp service; an
    Open WebUI reachable through the gateway keeps its login on."""
    services = config.services
    gateways = [n for n, s in services.items() if kind_of(s.kind).door]
    problems: list[Problem] = []
    if len(gateways) > 1:
        problems.append((("services", gateways[1], "kind"),
                         f"only one gateway per config (service '{gateways[0]}' is one already): "
                         "its keys belong to the whole project"))
    for name in gateways:
        gw = services[name]
        if gw.default is not None:
            target = services.get(gw.default)
            if target is None or not kind_of(target.kind).llama_server:
                llamas = [n for n, s in services.items() if kind_of(s.kind).llama_server]
                problems.append((("services", name, "default"),
                                 f"'{gw.default}' is not a llama.cpp service of this config "
                                 f"(llama.cpp services: {', '.join(llamas) or 'none'})"))
        if not gw.enabled:
            continue
        for llama, svc in services.items():
            if kind_of(svc.kind).llama_server and svc.enabled and llama in RESERVED_PATHS:
                problems.append((("services", llama),
                                 f"the gateway '{name}' serves it at /{llama}/v1, which is a path of its own or of "
                                 f"Open WebUI: rename the service (e.g. '{llama}-llm')"))
        for webui, svc in services.items():
            auth = str(svc.env.get("WEBUI_AUTH", "")).strip().lower()
            if kind_of(svc.kind).chat_ui and svc.enabled and auth in ("false", "0", "no", "off"):
                problems.append((("services", webui, "env", "WEBUI_AUTH"),
                                 f"the gateway '{name}' makes Open WebUI reachable, so its login stays on: "
                                 "remove WEBUI_AUTH (or disable the gateway)"))
    return problems


def hub_problems(config: Any) -> list[Problem]:
    """Hosts are routed to by the hub, which sits behind the gateway: both enabled, one of each."""
    services = config.services
    hubs = [n for n, s in services.items() if kind_of(s.kind).model_router]
    problems: list[Problem] = []
    if len(hubs) > 1:
        problems.append((("services", hubs[1], "kind"),
                         f"only one hub per config (service '{hubs[0]}' is one already)"))
    if not config.hosts:
        return problems
    door = next((n for n, s in services.items() if kind_of(s.kind).door and s.enabled), None)
    hub = next((n for n in hubs if services[n].enabled), None)
    if door is None or hub is None:
        missing = " and ".join(w for w, ok in (("the gateway", door), ("the hub", hub)) if ok is None)
        fix = " and ".join(f"[services.{n}] enabled = true"
                           for n, ok in (("gateway", door), ("hub", hub)) if ok is None)
        problems.append((("hosts",), f"hosts are reached through {missing}, which this config does not enable: "
                                     f"set {fix} (airpods hosts add does)"))
    return problems


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None

"""Checks that span services: duplicate host ports and aliases, unknown or cyclic depends_on."""

from __future__ import annotations

from typing import Any

Problem = tuple[tuple[str | int, ...], str]


def crosscheck(config: Any) -> list[Problem]:
    problems: list[Problem] = []
    services = config.services
    used: list[tuple[str, int, str]] = []
    aliases: dict[str, str] = {}
    for name, svc in services.items():
        if not svc.enabled:
            continue
        for i, port in enumerate(svc.ports):
            if port.host is None:
                continue
            for ip, number, owner in used:
                if number == port.host and (ip == port.host_ip or "0.0.0.0" in (ip, port.host_ip)):
                    problems.append((("services", name, "ports", i, "host"),
                                     f"host port {port.host} is also used by service '{owner}'"))
                    break
            used.append((port.host_ip, port.host, name))
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
    cycle = find_cycle({n: [d for d in s.depends_on if d in services and d != n]
                        for n, s in services.items()})
    if cycle:
        problems.append((("services", cycle[0], "depends_on"),
                         "dependency cycle: " + " -> ".join(cycle)))
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

"""The CPU plan: split the CPUs this machine lets airpods use among the llama.cpp processes that
can run at the same time, so that their spinning threads never fight over a core.

Pure: a CpuTopology (from probes/cpu.py) and the claims (from the resolved config) in, one
CpuShare per service out. The plan depends only on the config and the machine, never on what is
running, so a service started later leaves the others' spec hashes (and containers) alone."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.probes.cpu import CpuTopology, format_cpuset


@dataclass(frozen=True)
class CpuClaim:
    service: str
    processes: int = 1  # llama.cpp processes this service may run at once (router: max_loaded)
    threads: bool = True  # False: pinned only (Ollama), no llama.cpp thread flags
    user_set: str | None = None  # why the user's own setting wins, e.g. "command_args.threads = 4"


@dataclass(frozen=True)
class CpuShare:
    cpuset: str | None  # "0-3"; None = not pinned
    threads: int | None  # threads per process; None = not set by the plan
    reason: str

    def to_json(self) -> dict:
        return {"cpuset": self.cpuset, "threads": self.threads, "reason": self.reason}


def _slots(pool: list[int], n: int) -> list[list[int]]:
    """n groups of CPUs: disjoint and as even as possible when n <= len(pool); otherwise one CPU
    each, round-robin, so no CPU carries more than ceil(n / len(pool)) processes."""
    if n <= len(pool):
        size, extra = divmod(len(pool), n)
        out, at = [], 0
        for i in range(n):
            take = size + (1 if i < extra else 0)
            out.append(pool[at:at + take])
            at += take
        return out
    return [[pool[i % len(pool)]] for i in range(n)]


def plan_cpu(topology: CpuTopology, claims: list[CpuClaim]) -> dict[str, CpuShare]:
    """One CpuShare per claim. Claims with `user_set` are left alone and not counted."""
    out = {c.service: CpuShare(None, None, f"not planned: you set {c.user_set}")
           for c in claims if c.user_set}
    planned = [c for c in claims if not c.user_set]
    total = sum(c.processes for c in planned)
    if not planned:
        return out
    pool = topology.usable
    slots = _slots(pool, total)
    names = "llama.cpp process" if all(c.threads for c in planned) else "process"
    where = f"{len(pool)} usable CPU{'s' if len(pool) != 1 else ''}"
    if len(pool) != len(topology.cpus) or topology.quota is not None:
        where += f" of {topology.describe()}"
    at = 0
    for claim in planned:
        mine = slots[at:at + claim.processes]
        at += claim.processes
        cpus = sorted({cpu for slot in mine for cpu in slot})
        threads = min(len({topology.core_of(c) for c in slot}) for slot in mine)
        share = f"{claim.processes} of {total}" if claim.processes > 1 else f"1 of {total}"
        reason = f"{share} {names}{'es' if total > 1 else ''} on {where}"
        if total > len(pool):
            reason += " (more processes than CPUs: shares overlap)"
        out[claim.service] = CpuShare(format_cpuset(cpus), threads if claim.threads else None, reason)
    return out

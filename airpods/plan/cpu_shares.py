"""The CPU plan applied to a config's services: which llama.cpp (and Ollama) processes get CPUs of
their own, which services the user pinned themselves, and why a service has no share."""

from __future__ import annotations

from typing import Any

from airpods.kinds import kind_of
from airpods.plan import router as router_plan
from airpods.plan.argv import flag_name
from airpods.plan.cpu_plan import CpuClaim, CpuShare, plan_cpu

THREAD_FLAGS = ("--threads", "-t", "--threads-batch", "-tb")
THREAD_ENV = ("LLAMA_ARG_THREADS", "LLAMA_ARG_THREADS_BATCH")


def _user_cpu_setting(name: str, svc: Any) -> str | None:
    """The user's own CPU setting for a service, which the plan then leaves alone."""
    if svc.resources.cpuset:
        return f"services.{name}.resources.cpuset"
    if svc.resources.cpus:
        return f"services.{name}.resources.cpus"
    if kind_of(svc.kind).llama_server:
        for key in svc.command_args:
            if flag_name(key) in THREAD_FLAGS:
                return f"services.{name}.command_args.{key}"
        for key in THREAD_ENV:
            if key in svc.env:
                return f"services.{name}.env.{key}"
    return None


def cpu_shares(config: Any, topology: Any) -> dict[str, CpuShare]:
    """Every enabled llama.cpp process gets its own CPUs; Ollama, when it runs next to them, too.
    Open WebUI and other services are not pinned."""
    if topology is None or config.runtime.cpu_plan == "off":
        return {}
    enabled = {n: s for n, s in config.services.items() if s.enabled}
    claims = [CpuClaim(n, router_plan.processes_of(s), True, _user_cpu_setting(n, s))
              for n, s in enabled.items() if kind_of(s.kind).llama_server]
    if claims:
        claims += [CpuClaim(n, 1, False, _user_cpu_setting(n, s)) for n, s in enabled.items()
                   if kind_of(s.kind).ollama_api]
    return plan_cpu(topology, claims)


def cpu_reason(config: Any, svc: Any, share: CpuShare | None) -> str:
    if share is not None:
        return share.reason
    if config.runtime.cpu_plan == "off":
        return "not planned: runtime.cpu_plan = \"off\""
    if kind_of(svc.kind).llama_server and not svc.enabled:
        return "not planned: the service is disabled in the config (enable it to give it a share)"
    return "not pinned"

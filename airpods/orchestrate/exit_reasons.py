"""Why a container died while starting, in the words a user can act on: out of memory (RAM, with
the estimate and the limit), a GPU out of memory (which one), a refusal of the strict hardening
profile (the log line and the override), or its exit code and last log lines."""

from __future__ import annotations

from typing import Any

from airpods.errors import AirpodsError, ServiceExited
from airpods.plan.spec import ServiceSpec
from airpods.runtime.port import ContainerRuntime, ContainerState

LOG_TAIL = 20


def log_tail(runtime: ContainerRuntime, container: str, n: int = LOG_TAIL) -> list[str]:
    try:
        return [line for line in runtime.logs(container, tail=n) if line.strip()][-n:]
    except AirpodsError:
        return []


def gpu_out_of_memory(lines: list[str], spec: ServiceSpec) -> int | None:
    """The host index of the GPU llama.cpp ran out of memory on, from its log ("... on device 1:
    cudaMalloc failed: out of memory"); None when the log says no such thing."""
    import re

    for line in reversed(lines):
        low = line.lower()
        if "out of memory" in low and ("cuda" in low or "hip" in low or "vram" in low or "device" in low):
            m = re.search(r"device (\d+)", low)
            inside = int(m.group(1)) if m else 0
            return spec.gpus[inside] if inside < len(spec.gpus) else inside
    return None


def out_of_memory(state: ContainerState | None) -> bool:
    """Killed by the kernel for memory: inspect says OOMKilled, or SIGKILL (137) while loading."""
    return state is not None and (state.oom_killed or state.exit_code == 137)


def exit_error(runtime: ContainerRuntime, spec: ServiceSpec, state: ContainerState | None, restarted: bool,
               memory: Any) -> ServiceExited:
    """Why a container died while starting, in the words a user can act on: out of memory (RAM,
    with the estimate and the limit), a GPU out of memory (which one), or its exit code and log."""
    code = state.exit_code if state else None
    # A restart policy restarts it at once and the exit code is lost: an estimate over the limit
    # is then the evidence (cgroups v1 + runc never sets OOMKilled, only exit 137).
    if out_of_memory(state) or (restarted and memory is not None and not memory.fits):
        how = (f"killed by the kernel, exit code {code}" if not restarted else
               "it was killed and restarted; its estimate exceeds its limit")
        return ServiceExited(
            f"service '{spec.name}' ran out of memory during startup ({how})",
            details=[*(memory.lines() if memory else []), f"last log lines of {spec.container}:",
                     *log_tail(runtime, spec.container, 8)],
            hint=(f"give it more memory (services.{spec.name}.resources.memory) or need less: a smaller "
                  f"ctx_size, fewer slots (parallel), --cache-type-k q8_0, or a smaller quantization; "
                  f"see airpods models fit --service {spec.name} MODEL"),
            service=spec.name, out_of_memory=True)
    tail = log_tail(runtime, spec.container)
    gpu = gpu_out_of_memory(tail, spec)
    if gpu is not None:
        return ServiceExited(
            f"service '{spec.name}' ran out of GPU memory: GPU {gpu} ran out of memory (exit code {code})",
            details=[f"last log lines of {spec.container}:", *tail[-8:]],
            hint=(f"give it fewer layers (services.{spec.name}.command_args.n_gpu_layers), a smaller ctx_size "
                  f"or quantization, or free GPU {gpu}; see airpods models fit --service {spec.name} MODEL"),
            service=spec.name, out_of_memory=True)
    refused = strict_refusal(tail, spec)
    if refused is not None:
        return ServiceExited(
            f"service '{spec.name}' exited during startup (exit code {code}) under runtime.hardening = \"strict\": "
            f"{refused}", details=[f"last log lines of {spec.container}:", *tail],
            hint=(f"give it what it needs in [services.{spec.name}]: tmpfs = {{ \"/the/path\" = \"256m\" }} for a "
                  f"path it writes, cap_add = [\"CAP\"] for a capability, or hardening = \"default\" for Podman's "
                  "defaults (docs/configuration.md#least-privilege)"), service=spec.name)
    return ServiceExited(f"service '{spec.name}' exited during startup (exit code {code})",
                         details=[f"last log lines of {spec.container}:", *tail],
                         hint=f"see the full log: airpods logs {spec.name}")


_REFUSED = ("read-only file system", "operation not permitted", "permission denied", "erofs", "eperm", "eacces")


def strict_refusal(tail: list[str], spec: ServiceSpec) -> str | None:
    """The log line that says the strict profile refused something (a write to the read-only root,
    a capability), when the container runs under it."""
    if spec.confinement.profile != "strict":
        return None
    return next((line.strip()[:240] for line in reversed(tail) if any(p in line.lower() for p in _REFUSED)), None)

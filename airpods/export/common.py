"""What both export writers share: Kubernetes names, probes and resources from a ServiceSpec, and
what can be known about a model volume from this machine's disk (never by asking Podman)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airpods.kinds import kind_of
from airpods.paths import podman_volume_dir
from airpods.plan.spec import ServiceSpec

PART_OF = "airpods"
SECRET_NAME = "airpods-secrets"
PLACEHOLDER = "REPLACE-ME"
GPU_RESOURCES = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu"}  # device plugins; vulkan: none standard


def dns(name: str) -> str:
    """A DNS-1123 label: lower-case letters, digits and '-' (volume names may hold '_' and '.')."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return out[:63].rstrip("-") or "x"


def labels(spec: ServiceSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": dns(spec.name), "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": "airpods"}


def secret_key(spec: ServiceSpec, env: str) -> str:
    return f"{spec.name}.{env}"


@dataclass
class VolumeFacts:
    """What this machine's disk says about named volumes (Podman's local driver layout)."""

    sizes: dict[str, int] = field(default_factory=dict)  # volume -> bytes of GGUF files
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # volume -> airpods' models manifest
    roots: dict[str, Path] = field(default_factory=dict)


def volume_facts(specs: list[ServiceSpec], environ: Mapping[str, str]) -> VolumeFacts:
    facts = VolumeFacts()
    for volume in {v.source for s in specs for v in s.volumes if v.is_named}:
        root = podman_volume_dir(volume, environ)
        try:
            files = [p for p in root.iterdir() if p.suffix == ".gguf" and p.is_file() and not p.is_symlink()]
        except OSError:
            continue
        facts.roots[volume] = root
        facts.sizes[volume] = sum(p.stat().st_size for p in files)
        try:
            facts.manifests[volume] = json.loads((root / ".airpods-models.json").read_text())
        except (OSError, ValueError):
            facts.manifests[volume] = {}
    return facts


def gib(n: int, minimum: int = 1) -> str:
    return f"{max(minimum, math.ceil(n / (1 << 30)))}Gi"


def probe_path(spec: ServiceSpec) -> str | None:
    """A llama.cpp service is ready when /health is (its gate); others use their health path."""
    return spec.health.gates[0] if spec.health.gates else spec.health.path


def probes(spec: ServiceSpec) -> dict[str, Any]:
    path = probe_path(spec)
    if path is None or not spec.ports:
        return {}
    http: dict[str, Any] = {"path": path, "port": spec.ports[0].container}
    if spec.scheme == "https":
        http["scheme"] = "HTTPS"
    h = spec.health
    live: dict[str, Any] = {"httpGet": http, "periodSeconds": 20, "failureThreshold": 3}
    if h.check:  # the check `start` gives the container: a model that answers, not only a port
        live = {"exec": {"command": ["sh", "-c", h.check]}, "periodSeconds": max(1, math.ceil(h.interval)),
                "failureThreshold": h.retries, "timeoutSeconds": math.ceil(h.check_timeout)}
    # A port behind a password (Prometheus'): the kubelet would need it in the YAML; its own check,
    # which takes the request for a password as an answer, stands in for an HTTP probe.
    ask = {"exec": live["exec"]} if spec.http_auth and h.check else {"httpGet": http}
    return {
        "startupProbe": {**ask, "periodSeconds": 2, "failureThreshold": max(1, math.ceil(spec.health.timeout / 2))},
        "readinessProbe": {**ask, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": live,
    }


def resources(spec: ServiceSpec, memory_estimate: int | None) -> dict[str, Any]:
    from airpods.plan.memory import parse_size

    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    processes = spec.router.processes if spec.router else 1
    if spec.cpus:
        limits["cpu"] = str(spec.cpus)
        requests["cpu"] = str(spec.cpus)
    elif spec.threads:
        requests["cpu"] = str(spec.threads * processes)  # the CPU plan's share
    if memory_estimate:
        requests["memory"] = f"{math.ceil(memory_estimate / (1 << 20))}Mi"
    if spec.memory:
        limits["memory"] = f"{math.ceil(parse_size(spec.memory) / (1 << 20))}Mi"
        requests.setdefault("memory", limits["memory"])
    gpus = len(spec.gpus) if spec.gpus or spec.gpu_layers is not None else 1  # as many as the GPU plan gives
    if spec.variant in GPU_RESOURCES and gpus:
        limits[GPU_RESOURCES[spec.variant]] = gpus
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def memory_estimate(spec: ServiceSpec, facts: VolumeFacts) -> int | None:
    """The memory preflight's estimate, when the model volume is on this machine's disk."""
    from airpods.orchestrate.memory_check import report_at

    if not kind_of(spec.kind).llama_server:
        return None
    volume = next((v.source for v in spec.volumes if v.target == "/models"), None)
    root = facts.roots.get(volume or "")
    report = report_at(spec, root, budget_bytes=None, budget_why="", others=[]) if root else None
    return report.estimate.total if report else None

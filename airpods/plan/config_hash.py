"""The config hash: what the configuration alone says about a service, apart from what the probes
decide, so that a running container whose spec differs only by the machine plan is left alone.

Stability: a key added to the config later is left out while it is unset (LATER_KEYS) or counts
only for its own kind (ServiceKind.own_keys); a value added later counts only when it differs from what it
was before it existed (runtime.hardening = "default", a confinement of Podman's defaults)."""

from __future__ import annotations

from typing import Any

from airpods.kinds import KINDS, kind_of

# Service keys added later (the gateway's, least privilege's): left out of the config hash unless set, so
# that older hashes still match.
LATER_KEYS = ("listen", "default", "hostnames", "tls_cert", "tls_key", "hardening", "cap_add", "tmpfs", "draft_model",
              "role")
MODEL_LATER_KEYS = ("role", "draft_model")  # a router model's, likewise


def config_hash(config: Any, f: Any, rendered: dict, wiring: dict, check: str | None = None,
                confinement: Any = None) -> str:
    """A hash of what the configuration alone says about a service (its table, the runtime and gpu
    tables, its ports, names, key and rendered values, what it is wired to) and nothing the probes
    decide (GPU variant, devices, CPU plan): a running container whose spec differs only in what
    the probes decide is not recreated by a plain `start`."""
    import hashlib
    import json

    service = f.svc.model_dump(mode="json")
    for key in LATER_KEYS:
        if key not in f.svc.model_fields_set:
            service.pop(key, None)
    if isinstance(f.svc.models, dict):
        for mid, model in f.svc.models.items():
            for key in MODEL_LATER_KEYS:
                if key not in model.model_fields_set:
                    service["models"][mid].pop(key, None)
    own = kind_of(f.svc.kind).own_keys  # a llama.cpp service's config did change: it gained --metrics
    for key in {k for kind in KINDS.values() for k in kind.own_keys} - set(own):
        if key not in f.svc.model_fields_set:
            service.pop(key, None)
    runtime = config.runtime.model_dump(mode="json")
    if "name_prefix" not in config.runtime.model_fields_set:  # added later: older hashes still match
        runtime.pop("name_prefix", None)
    if runtime.get("hardening") == "default":  # added later: Podman's defaults hash as before it
        runtime.pop("hardening")
    data = {"format": 1, "service": service, "runtime": runtime,
            "gpu": config.gpu.model_dump(mode="json"), "pod": f.pod, "container": f.container,
            "aliases": f.aliases, "ports": [(p.host_ip, p.host, p.container) for p in f.ports],
            "api_key": hashlib.sha256((f.api_key or "").encode()).hexdigest(), "rendered": rendered,
            "wiring": wiring if kind_of(f.svc.kind).wired else None}
    if check:  # llama.cpp's and Prometheus' health check are the config's doing, not the probes': a changed one
        data["check"] = check  # recreates it (counted since the probe key left curl's argv and Prometheus' port
        # got a password, so that running ones get both; other kinds' hashes stay)
    if confinement is not None and confinement.profile == "strict":  # least privilege is the config's: it
        data["confinement"] = confinement.to_json()  # recreates a running container (Podman's defaults: as before)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

"""Prometheus (kind = "prometheus"): its scrape configuration, computed from the other services'
resolved facts. Pure: every enabled llama.cpp service's /metrics by its network alias (a router's:
one job per model, `?model=ID`), labelled service, model and project; the gateway's Caddy metrics
when the gateway is on.

llama-server answers /metrics only with its API key. Prometheus reads a bearer token from a file
(`credentials_file`), so each key comes in as a secret environment variable (masked in render, a
Secret in Kubernetes, a Podman secret in Quadlet, as for every other key) and a two-line shell
wrapper writes it to a 0600 file inside the container before it starts Prometheus: the
configuration file itself holds no key and is an ordinary read-only mount."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from airpods.plan.gateway import METRICS_PORT as GATEWAY_METRICS_PORT
from airpods.plan.spec import VolumeSpec

ETC = "/etc/airpods-prometheus"
CONFIG = "prometheus.yml"
KEYS = "/tmp/airpods-keys"  # noqa: S108  (inside the container, 0700, written by the wrapper)
DATA = "/prometheus"
ARGS = (f"--config.file={ETC}/{CONFIG}", f"--storage.tsdb.path={DATA}", "--web.listen-address=:9090")


@dataclass(frozen=True)
class PrometheusParts:
    config: str  # prometheus.yml, no secrets in it
    env: dict[str, str]  # the scrape keys
    secret_env: frozenset[str]
    volumes: tuple[VolumeSpec, ...]
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    config_path: str  # on the host: where start writes `config`
    targets: tuple[tuple[str, str, str], ...]  # (service, model, address) scraped


def key_env(service: str) -> str:
    """The variable holding a service's key (config validation refuses two names that give one)."""
    from airpods.config.crosscheck import env_name

    return "AIRPODS_SCRAPE_KEY_" + env_name(service)


def _job(name: str, address: str, labels: dict[str, str], key_file: str | None,
         params: dict[str, list[str]] | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name, "metrics_path": "/metrics",
                           "static_configs": [{"targets": [address], "labels": labels}]}
    if params:
        job["params"] = params
    if key_file:
        job["authorization"] = {"type": "Bearer", "credentials_file": key_file}
    return job


def build(name: str, svc: Any, facts: dict[str, Any], project: str, store_dir: str) -> PrometheusParts:
    """`facts`: resolve's per-service facts (aliases, container ports, API keys, the service table)."""
    jobs, env, targets = [], {}, []
    for other, f in sorted(facts.items()):
        if other == name or not f.svc.enabled or not f.ports:
            continue
        address = f"{f.aliases[0]}:{f.ports[0].container}"
        if f.svc.kind == "llamacpp" and f.svc.metrics:
            key_file = f"{KEYS}/{other}" if f.api_key else None
            if f.api_key:
                env[key_env(other)] = f.api_key
            if f.svc.mode == "router" and isinstance(f.svc.models, dict):
                for model_id in sorted(f.svc.models):
                    labels = {"service": other, "model": model_id, "project": project}
                    jobs.append(_job(f"llamacpp-{other}-{model_id}", address, labels, key_file,
                                     {"model": [model_id], "autoload": ["false"]}))
                    targets.append((other, model_id, address))
            else:
                model = f.svc.default_model or ""
                jobs.append(_job(f"llamacpp-{other}", address, {"service": other, "model": model,
                                                                 "project": project}, key_file))
                targets.append((other, model, address))
        elif f.svc.kind == "gateway":
            gateway = f"{f.aliases[0]}:{GATEWAY_METRICS_PORT}"
            jobs.append(_job(f"gateway-{other}", gateway, {"service": other, "project": project}, None))
            targets.append((other, "", gateway))
    interval = svc.scrape_interval
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval,
                         "external_labels": {"airpods_project": project}},
              "scrape_configs": jobs}
    text = "# Written by airpods from the enabled services; `airpods start` rewrites it. No keys in it.\n"
    text += json.dumps(config, indent=2, sort_keys=True) + "\n"  # JSON is YAML: no YAML writer needed
    writes = " && ".join(f"printf %s \"${k}\" > {KEYS}/{shlex.quote(s)}" for s, k in
                         sorted((s, key_env(s)) for s in (n for n, f in facts.items() if key_env(n) in env)))
    script = f"umask 077 && mkdir -p {KEYS}" + (f" && {writes}" if writes else "") + " && exec prometheus \"$@\""
    return PrometheusParts(text, env, frozenset(env), (VolumeSpec(f"{store_dir}/etc", ETC, "ro"),),
                           ("/bin/sh", "-c", script, "prometheus"), ARGS, f"{store_dir}/etc/{CONFIG}",
                           tuple(targets))

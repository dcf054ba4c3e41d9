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

from airpods.kinds import kind_of
from airpods.plan.gateway import METRICS_PORT as GATEWAY_METRICS_PORT
from airpods.plan.spec import VolumeSpec

ETC = "/etc/airpods-prometheus"
CONFIG = "prometheus.yml"
WEB = "web.yml"  # its web configuration: basic auth, so that other local users cannot read the metrics
WEB_USER = "airpods"
KEYS = "/tmp/airpods-keys"  # noqa: S108  (inside the container, 0700, written by the wrapper)
DATA = "/prometheus"
ARGS = (f"--config.file={ETC}/{CONFIG}", f"--storage.tsdb.path={DATA}", "--web.listen-address=:9090",
        f"--web.config.file={ETC}/{WEB}")


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
    web: str = ""  # web.yml: the password's bcrypt hash (never the password)
    web_path: str = ""  # on the host: where start writes `web`
    http_auth: str = ""  # base64 of "user:password": what airpods' own probes of its port send


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


def web_config(password: str) -> str:
    """Prometheus' web.yml: basic auth for WEB_USER with `password`, as a bcrypt hash whose salt comes
    from the password itself, so the same password always gives the same file (a new salt at every
    start would recreate Prometheus every time). The password is 43 random characters: bcrypt's cost
    adds nothing to it, so a low one keeps each of Prometheus' checks of it cheap."""
    import base64
    import hashlib
    import hmac

    import bcrypt

    digest = hmac.new(password.encode(), b"airpods prometheus web.yml salt", hashlib.sha256).digest()[:16]
    std, ours = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", \
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    salt = base64.b64encode(digest).decode()[:22].translate(str.maketrans(std, ours))
    hashed = bcrypt.hashpw(password.encode(), f"$2b$06${salt}".encode()).decode()
    return ("# Written by airpods: basic auth for Prometheus' port (the password: airpods keys prometheus).\n"
            + json.dumps({"basic_auth_users": {WEB_USER: hashed}}, indent=2) + "\n")


def build(name: str, svc: Any, facts: dict[str, Any], project: str, store_dir: str,
          password: str | None = None) -> PrometheusParts:
    """`facts`: resolve's per-service facts (aliases, container ports, API keys, the service table).
    `password`: its web password (basic auth on its port); the placeholder of a store that makes
    no secrets gives a file that says so (never cached, never started)."""
    jobs, env, targets = [], {}, []
    for other, f in sorted(facts.items()):
        if other == name or not f.svc.enabled or not f.ports:
            continue
        address = f"{f.aliases[0]}:{f.ports[0].container}"
        if kind_of(f.svc.kind).llama_server and f.svc.metrics:
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
        elif kind_of(f.svc.kind).door:
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
    import base64

    from airpods.secrets import PLACEHOLDER

    made = bool(password) and password != PLACEHOLDER
    web = web_config(password) if made else f"# {PLACEHOLDER}\n"
    auth = base64.b64encode(f"{WEB_USER}:{password}".encode()).decode() if made else ""
    return PrometheusParts(text, env, frozenset(env), (VolumeSpec(f"{store_dir}/etc", ETC, "ro"),),
                           ("/bin/sh", "-c", script, "prometheus"), ARGS, f"{store_dir}/etc/{CONFIG}",
                           tuple(targets), web, f"{store_dir}/etc/{WEB}", auth)

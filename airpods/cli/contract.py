"""The `--json` contract: the keys each command's JSON carries, written once. The commands' --help
lists them from here, and the unit tests check every JSON a command prints against its shape
(tests/unit/conftest.py), so a key renamed or dropped fails a test instead of a user's script."""

from __future__ import annotations

from typing import Any, NamedTuple


class Shape(NamedTuple):
    keys: tuple[str, ...]  # in every object
    optional: tuple[str, ...] = ()  # where they apply (a gateway's row, a GPU machine, ...)
    rows: bool = True  # a list of such objects (else one object)

    def help(self) -> str:
        text = ", ".join(self.keys)
        return f"keys: {text}" + (f"; where they apply: {', '.join(self.optional)}" if self.optional else "")

    def problems(self, data: Any) -> list[str]:
        """What in `data` breaks the shape (missing keys, keys it does not know)."""
        items = data if self.rows else [data]
        if self.rows and not isinstance(data, list):
            return [f"expected a list, got {type(data).__name__}"]
        out = []
        for item in items:
            if not isinstance(item, dict):
                out.append(f"expected an object, got {type(item).__name__}")
                continue
            missing = [k for k in self.keys if k not in item]
            unknown = sorted(set(item) - set(self.keys) - set(self.optional))
            out += [f"missing {k!r}" for k in missing] + [f"not in the contract: {k!r}" for k in unknown]
        return out


STATUS = Shape(("service", "state", "health", "url", "image", "pod", "container", "model", "kind", "project",
                "uptime_seconds", "exit_code", "restarts", "last_failure", "orphaned", "outdated", "plan_differs",
                "wired_to", "router", "cpuset", "cpuset_enforced", "threads", "cpu_plan", "memory_limit",
                "memory_limit_enforced", "gpus", "gpu_layers", "gpu_plan"),
               ("ca_fingerprint", "models", "latency_ms"))  # the gateway's row; a host's (kind "host")
STATUS_BY_LABELS = Shape(("service", "state", "health", "url", "image", "pod", "container", "model", "project",
                          "restarts", "last_failure"))  # the config does not load: what the labels say
RENDER = Shape(("service", "kind", "image", "variant", "pod", "container", "network", "aliases", "ports", "volumes",
                "env", "devices", "entrypoint", "command", "health", "url", "security_opt", "security", "resources",
                "cpuset", "threads", "cpu_plan", "restart_policy", "depends_on", "default_model", "wired_to", "gpu",
                "gpus", "gpu_layers", "gpu_plan", "vram", "spec_hash", "config_hash", "project", "mode", "router",
                "router_preset", "gateway", "config_files"), rows=False)
DOCTOR = Shape(("podman", "socket", "network_backend", "containers", "probes", "gpus", "cpu", "services", "health",
                "gateway", "speed"), ("engine", "config_error"), rows=False)
TOP = Shape(("service", "model", "kind", "state", "container", "why", "cpu_percent", "memory_bytes", "vram"),
            ("requests_processing", "requests_deferred", "prompt_tokens_per_s", "generation_tokens_per_s",
             "kv_cache_used_percent", "slots_busy", "slots_total", "slots", "models_loaded",
             "requests_per_s", "requests_last_minute", "people_active", "hub", "title", "errors_last_minute",
             "median_ms", "draft_acceptance"))
MODELS_LIST = Shape(("file", "size", "sha256", "source", "architecture", "quantization", "parts", "vision", "mmproj"))
MODELS_PS = Shape(("service", "id", "aliases", "state", "file", "why", "exit_code"), ("role", "draft"))
MODELS_FIT = Shape(("model", "service", "ctx", "parallel", "weights", "kv_cache", "compute", "overhead", "total",
                    "available", "limit", "others", "fits", "max_ctx", "gpus"), ("speed", "measured", "loaded"),
                   rows=False)
MODELS_SEARCH = Shape(("repo", "downloads", "likes", "vision", "split", "error", "quants", "best", "run",
                       "prediction_basis", "estimates_here"))
PULL_LIST = Shape(("name", "quant", "files", "size", "total", "available", "limit", "fits", "max_ctx"),
                  ("gpus", "gpu_layers"))
KEYS_LIST = Shape(("name", "created", "last_used"))
BENCH = Shape(("at", "model", "model_id", "service", "quant", "device", "prompt_tokens", "gen_tokens", "parallel",
               "repeat", "prompt_tokens_per_s", "generation_tokens_per_s", "first_token_ms", "memory_bytes",
               "estimate_bytes", "predicted_generation_tokens_per_s", "predicted_prompt_tokens_per_s",
               "prediction_basis", "flags", "image", "image_digest", "cpu", "gpus", "airpods_version", "weights",
               "kv_bytes"), ("draft_acceptance", "vram", "driver", "slower"), rows=False)
HOSTS_LIST = Shape(("name", "url", "reachable", "latency_ms", "models", "tls_expires", "error"))
KEYS_USAGE = Shape(("person", "model", "service", "requests", "errors", "seconds", "prompt_tokens",
                    "completion_tokens", "unmatched", "last"))

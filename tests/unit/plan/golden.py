"""Fixed stacks resolved with fixed inputs (secrets, paths, CPUs, GPUs), for the golden hashes: what
each service's spec_hash and config_hash are, independent of this machine and of tmp paths."""

from __future__ import annotations

from pathlib import Path

from airpods.plan.gpu_plan import ModelCost
from airpods.probes.cpu import CpuTopology
from airpods.probes.gpu import Gpu
from airpods.secrets import SecretStore

GIB = 1 << 30
MIB = 1 << 20


class FixedSecrets(SecretStore):
    """Every secret a fixed token under /golden/secrets; nothing written."""

    def __init__(self) -> None:
        super().__init__(Path("/golden/secrets"), create=True)

    def get(self, name: str) -> str:
        return f"golden{name.replace('-', '').replace('.', '').replace('_', '')}token0123456789abcdef"

    def read(self, name: str) -> str | None:
        return self.get(name)

    def put(self, name: str, value: str) -> Path:
        return self.path(name)


ROUTER = """
[runtime]
project = "golden-router"
[services.llamacpp]
mode = "router"
max_loaded = 2
idle_unload = 900
default_model = "chat"
[services.llamacpp.command_args]
ctx_size = 4096
[services.llamacpp.models.chat]
file = "qwen.gguf"
aliases = ["gpt-4o-mini"]
load_on_startup = true
pin = true
[services.llamacpp.models.embed]
file = "nomic.gguf"
embeddings = true
"""

GATEWAY = """
[runtime]
project = "golden-gateway"
[services.open-webui]
enabled = true
[services.gateway]
enabled = true
"""

PROMETHEUS = """
[runtime]
project = "golden-prometheus"
[services.prometheus]
enabled = true
scrape_interval = "5s"
"""

HUB = """
[runtime]
project = "golden-hub"
[services.gateway]
enabled = true
[services.hub]
enabled = true
[hosts.box-a]
url = "https://127.0.0.2:8443"
[hosts.gpu-box]
url = "https://gpu-box.lan:9443"
"""

STACKS = {"default": None, "router": ROUTER, "gateway": GATEWAY, "prometheus": PROMETHEUS, "gpu": None, "hub": HUB}

CPUS = CpuTopology(cpus=tuple(range(8)), source="golden")
GPUS = (Gpu(0, "GPU-0000", "Golden GPU", 24 * GIB, 24 * GIB, cdi_name="nvidia.com/gpu=0"),
        Gpu(1, "GPU-0001", "Golden GPU", 24 * GIB, 24 * GIB, cdi_name="nvidia.com/gpu=1"))
COST = ModelCost(tuple([300 * MIB] * 30), 300 * MIB, 100 * MIB, 256 * MIB)


def resolved(name: str, tmp: Path) -> dict:
    """The stack's specs, as `start` would create them on the golden machine."""
    from airpods.config.loader import load_raw, validate
    from airpods.plan.resolve import Overrides, resolve

    text = STACKS[name]
    path = None
    if text is not None:
        path = tmp / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
    config = validate(load_raw(path))
    variant = "cuda" if name == "gpu" else "cpu"
    specs = resolve(config, (), Overrides(env_variant=variant), FixedSecrets(), cpu=CPUS,
                    router_dir="/golden/router", project=f"golden-{name}", gateway_dir="/golden/gateway",
                    prometheus_dir="/golden/prometheus", hub_dir="/golden/hub")
    if name == "gpu":
        from airpods.plan.gpu_apply import apply

        specs = apply(specs, GPUS, {"llamacpp": COST}, {})
    return specs


def hashes(name: str, tmp: Path) -> dict[str, tuple[str, str]]:
    return {n: (s.spec_hash, s.config_hash) for n, s in resolved(name, tmp).items()}

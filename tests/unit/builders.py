"""Builders the unit tests share: configs, specs and runtimes made the same way in several subjects
(fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from airpods.plan.spec import HealthSpec, PortSpec, ServiceSpec, VolumeSpec
from airpods.runtime.fake import FakeRuntime
from tests.gguf_builder import llama_like, write_gguf
from tests.podman_env import free_port

ROOT = Path(__file__).resolve().parents[2]
F16 = 1  # a tensor's GGML type



def layouts(write_config) -> dict[str, str | None]:
    out = {k: (str(v) if v else None) for k, v in LAYOUTS.items()}
    out["router"] = write_config(ROUTER + "[services.open-webui]\nenabled = true\n")
    out["gateway"] = write_config(ROUTER + "[services.open-webui]\nenabled = true\n"
                                           "[services.gateway]\nenabled = true\n")
    return out


MODELS = "airpods_llamacpp_models"


CADDY = "docker.io/library/caddy:2"


LLAMA = "ghcr.io/ggml-org/llama.cpp:server"


PORTS = [free_port() for _ in range(4)]  # one set for the module: a changed port is a changed config


def stack(write_config, *, gateway: str = "", extra: str = "", webui: bool = False) -> str:
    webui_port, llama_port, llama2_port, gateway_port = PORTS
    return write_config(f"""
[runtime]
project = "lab"
[services.open-webui]
enabled = {str(webui).lower()}
ports = [{{ host = {webui_port}, container = 8080 }}]
[services.llamacpp]
ports = [{{ host = {llama_port}, container = 8080 }}]
[services.llamacpp-2]
kind = "llamacpp"
image = "{LLAMA}"
default_model = "SmolLM2-135M-Instruct.Q4_1.gguf"
api_key = ""
ports = [{{ host = {llama2_port}, container = 8080 }}]
{extra}
[services.gateway]
enabled = true
ports = [{{ host = {gateway_port}, container = 8443 }}]
{gateway}
""")


def gateway_dir(isolated: Path, project: str = "lab") -> Path:
    return isolated / "data" / "airpods" / "gateway" / project


CA = ("-----BEGIN CERTIFICATE-----\nMIIBozCCAUmgAwIBAgIQZmFrZS1jYS1mb3ItdGVzdHMwCgYIKoZIzj0EAwIwMDEu\n"
      "-----END CERTIFICATE-----\n")


def fake_smi(bin_dir: Path, output: str = "GPU 0: NVIDIA RTX 4090 (UUID: GPU-x)", code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    smi.chmod(0o755)


def fake_nvidia(isolated: Path, monkeypatch, gpus: list[tuple[str, int, int]]) -> None:
    """gpus: (name, total MiB, free MiB) each."""
    bin_dir = isolated / "bin"
    bin_dir.mkdir(exist_ok=True)
    query = "".join(f"{i}, GPU-{i:04d}, {n}, {t}, {f}, 8.9, 580.1\\n" for i, (n, t, f) in enumerate(gpus))
    listing = "".join(f"GPU {i}: {n} (UUID: GPU-{i:04d})\\n" for i, (n, _, _) in enumerate(gpus))
    free = "".join(f"{f}\\n" for _, _, f in gpus)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncase \"$*\" in\n"
                   f"  *--query-gpu=index*) printf '{query}' ;;\n"
                   f"  *--query-gpu=memory.free*) printf '{free}' ;;\n"
                   f"  *) printf '{listing}' ;;\nesac\n")
    smi.chmod(0o755)
    names = [{"name": str(i), "containerEdits": {"deviceNodes": [{"path": f"/dev/nvidia{i}"}]}}
             for i in range(len(gpus))] + [{"name": "all", "containerEdits": {}}]
    (isolated / "cdi" / "nvidia.json").write_text(json.dumps(
        {"cdiVersion": "0.3.0", "kind": "nvidia.com/gpu", "devices": names}))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    from airpods.probes.gpu import detect, inventory

    detect.cache_clear()
    inventory.cache_clear()


def DiskRuntime(root: Path, **kw) -> FakeRuntime:  # noqa: N802 - the fake with volumes on disk
    return FakeRuntime(volume_root=root, **kw)


def gguf(tmp: Path, name: str, ftype: int, layers: int = 4) -> bytes:
    kv = {**llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192), "general.file_type": ftype,
          "tokenizer.ggml.tokens": [f"t{i}" for i in range(3000)]}  # a header of a few dozen kB
    path = write_gguf(tmp / name, kv, [(f"blk.{i}.w", F16, [576, 1000]) for i in range(layers)])
    return path.read_bytes()


def volume(fake) -> Path:
    return Path(fake.volume_path("airpods_llamacpp_models"))


def spec(name: str, **kw) -> ServiceSpec:
    base = dict(name=name, kind="generic", image=f"localhost/test/{name}:1", variant="cpu", pod=name,
                container=f"{name}-0", network="airpods", aliases=(name,),
                ports=(PortSpec(free_port(), 8080),), volumes=(VolumeSpec(f"{name}_data", "/data"),),
                env={}, devices=(), security_opt=(), entrypoint=None, command=(),
                health=HealthSpec(None, (200, 299), 5.0))
    base.update(kw)
    return ServiceSpec(**base)


def render(cli, path=None, service="llamacpp", *extra):
    args = (["--config", path] if path else []) + ["config", "render", service, "--json", *extra]
    result = cli(*args)
    assert result.code == 0, result.text
    return json.loads(result.out)


ROUTER = """
[services.llamacpp]
mode = "router"
max_loaded = 2
idle_unload = 900
default_model = "chat"
[services.llamacpp.command_args]
ctx_size = 4096
n_gpu_layers = "{{ 999 if gpu.accelerated else 0 }}"
[services.llamacpp.models.chat]
file = "qwen.gguf"
aliases = ["gpt-4o-mini"]
load_on_startup = true
command_args = { ctx_size = "{{ 2 * 4096 }}", jinja = true }
[services.llamacpp.models.embed]
file = "nomic.gguf"
embeddings = true
[services.llamacpp.models.rerank]
file = "bge.gguf"
embeddings = true
pooling = "rank"
"""


LAYOUTS = {
    "default": None,
    "hybrid": ROOT / "configs" / "examples" / "hybrid.toml",
    "multi-llama": ROOT / "configs" / "examples" / "multi-llama.toml",
}


def model_in_volume(fake, name: str, layers: int = 30, width: int = 80_000) -> Path:
    fake.ensure_volume(MODELS)
    kv = llama_like("llama", layers, 576, 9, 3, 1536, 49152, 8192)
    return write_gguf(Path(fake.volume_path(MODELS)) / name, kv, [("w", F16, [576, width])])


TWO_MODEL_ROUTER = """
[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
[services.r]
kind = "llamacpp"
mode = "router"
images = {{ cpu = "{image}" }}
ports = [{{ host = {port}, container = 8080 }}]
command_args = {{ ctx_size = 4096 }}
[services.r.models.small]
file = "small.gguf"
[services.r.models.big]
file = "big.gguf"
"""

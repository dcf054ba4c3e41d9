"""GPU probes without hardware: a fake nvidia-smi on PATH, a temp CDI dir, a temp /dev."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airpods.plan.gpu import choose
from airpods.probes import gpu
from airpods.probes.gpu import ProbeEnv, detect
from tests.unit.builders import fake_smi


def env_for(tmp: Path, selinux: str | None = None) -> ProbeEnv:
    enforce = tmp / "enforce"
    if selinux is not None:
        enforce.write_text(selinux)
    return ProbeEnv(path=str(tmp / "bin"), cdi_dirs=(tmp / "cdi",), dev_root=tmp / "dev",
                    selinux_enforce=enforce)


def test_nothing_found_is_cpu(isolated):
    results = detect(env_for(isolated))
    assert [r.variant for r in results] == [None, None, None]
    assert choose(results, {"cpu", "cuda"}).variant == "cpu"


def test_nvidia_with_cdi_spec_is_cuda(isolated):
    fake_smi(isolated / "bin")
    (isolated / "cdi" / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
    results = detect(env_for(isolated, selinux="1"))
    choice = choose(results, {"cpu", "cuda"})
    assert choice.variant == "cuda"
    assert choice.devices == ("nvidia.com/gpu=all",)
    assert choice.security_opt == ("label=disable",)
    assert "RTX 4090" in results[0].reason


def test_nvidia_without_cdi_spec_warns_loudly_and_uses_cpu(isolated):
    fake_smi(isolated / "bin")
    results = detect(env_for(isolated))
    choice = choose(results, {"cpu", "cuda"})
    assert choice.variant == "cpu"
    assert any("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml" in w for w in choice.warnings)


def test_failing_nvidia_smi_is_not_a_gpu(isolated):
    fake_smi(isolated / "bin", output="NVIDIA-SMI has failed", code=9)
    assert detect(env_for(isolated))[0].variant is None


def test_amd_rocm_needs_kfd_and_render_node(isolated):
    dev = isolated / "dev"
    (dev / "kfd").touch()
    (dev / "dri").mkdir()
    assert detect(env_for(isolated))[1].variant is None  # kfd alone is not enough
    (dev / "dri" / "renderD128").touch()
    assert detect(env_for(isolated))[1].variant is None  # cached for the rest of the run
    detect.cache_clear()
    choice = choose(detect(env_for(isolated)), {"cpu", "rocm"})
    assert choice.variant == "rocm" and choice.devices == ("/dev/kfd", "/dev/dri")


def test_dri_alone_is_vulkan_only_with_a_vulkan_image(isolated):
    (isolated / "dev" / "dri").mkdir()
    (isolated / "dev" / "dri" / "renderD128").touch()
    results = detect(env_for(isolated))
    assert choose(results, {"cpu", "vulkan"}).variant == "vulkan"
    fallback = choose(results, {"cpu", "cuda"})
    assert fallback.variant == "cpu" and any("no images.vulkan" in w for w in fallback.warnings)


def test_probe_order_prefers_nvidia(isolated):
    fake_smi(isolated / "bin")
    (isolated / "cdi" / "nvidia.json").write_text('{"kind": "nvidia.com/gpu"}')
    (isolated / "dev" / "dri").mkdir()
    (isolated / "dev" / "dri" / "renderD128").touch()
    assert choose(detect(env_for(isolated)), {"cpu", "cuda", "vulkan"}).variant == "cuda"


def test_probes_never_touch_os_environ(isolated, monkeypatch):
    import os

    before = dict(os.environ)
    fake_smi(isolated / "bin")
    detect(env_for(isolated))
    assert dict(os.environ) == before


@pytest.mark.parametrize("force", ["gpu.force_cpu", "--cpu", "AIRPODS_GPU"])
def test_overrides_force_cpu(force, isolated, cli, write_config, monkeypatch):
    fake_smi(isolated / "bin")
    (isolated / "cdi" / "nvidia.yaml").write_text("kind: nvidia.com/gpu\n")
    monkeypatch.setenv("PATH", f"{isolated / 'bin'}:/usr/bin:/bin")
    gpu.detect.cache_clear()
    assert json.loads(cli("config", "render", "llamacpp", "--json").out)["variant"] == "cuda"
    args = ["config", "render", "llamacpp", "--json"]
    if force == "gpu.force_cpu":
        args = ["--config", write_config("[gpu]\nforce_cpu = true\n"), *args]
    elif force == "--cpu":
        args.append("--cpu")
    else:
        monkeypatch.setenv("AIRPODS_GPU", "cpu")
    data = json.loads(cli(*args).out)
    assert data["variant"] == "cpu" and data["devices"] == []


def test_doctor_reports_probes_and_images(isolated, cli, monkeypatch):
    fake_smi(isolated / "bin")
    monkeypatch.setenv("PATH", f"{isolated / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("CONTAINER_HOST", "unix:///nonexistent/podman.sock")
    gpu.detect.cache_clear()
    result = cli("doctor", "--json")
    assert result.code == 1  # no usable socket at that URL
    assert "nothing answers on the Podman socket" in result.err
    report = json.loads(result.out)
    assert report["probes"][0]["probe"] == "nvidia" and report["probes"][0]["variant"] is None
    assert "nvidia-ctk cdi generate" in report["probes"][0]["warning"]
    assert report["services"]["llamacpp"]["image"] == "ghcr.io/ggml-org/llama.cpp:server"


def test_unused_gpu_is_reported_per_service_and_not_when_cpu_is_chosen(isolated, cli, monkeypatch, write_config):
    fake_smi(isolated / "bin")  # nvidia-smi answers, but no CDI spec
    monkeypatch.setenv("PATH", f"{isolated / 'bin'}:/usr/bin:/bin")
    data = json.loads(cli("config", "render", "llamacpp", "--json").out)
    assert data["variant"] == "cpu"
    assert any("nvidia-ctk cdi generate" in w for w in data["gpu"]["warnings"])
    text = cli("config", "render", "llamacpp")
    assert "warning:" in text.err and "nvidia-ctk cdi generate" in text.err
    forced = json.loads(cli("config", "render", "llamacpp", "--json", "--cpu").out)
    assert forced["gpu"] == {"variant": "cpu", "reason": "--cpu given", "warnings": []}


def test_ollama_gets_the_rocm_image_and_devices(isolated, cli):
    (isolated / "dev" / "kfd").touch()
    (isolated / "dev" / "dri").mkdir()
    (isolated / "dev" / "dri" / "renderD128").touch()
    data = json.loads(cli("config", "render", "ollama", "--json").out)
    assert data["image"] == "docker.io/ollama/ollama:rocm" and data["devices"] == ["/dev/kfd", "/dev/dri"]
    webui = json.loads(cli("config", "render", "open-webui", "--json").out)
    assert webui["devices"] == [] and webui["variant"] == "cpu"  # gpu.enabled = false

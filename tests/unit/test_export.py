"""`airpods export kube`: every document valid against the official schemas of two Kubernetes
versions, wiring URLs that resolve in-cluster, keys only in the Secret; and nothing asks Podman."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.builders import ROUTER, layouts

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("1.30.0", "1.37.0")


@pytest.fixture(autouse=True)
def no_podman(monkeypatch):
    """Export must never contact Podman: any attempt to connect fails the test."""
    import airpods.runtime.connect as connect

    def refuse(*args, **kwargs):
        raise AssertionError("export tried to reach Podman")

    monkeypatch.setattr(connect, "resolve_url", refuse)


def export(cli, path: str | None, *args: str) -> tuple[list[dict], str]:
    result = cli(*(["--config", path] if path else []), "export", "kube", *args)
    assert result.code == 0, result.text
    return [d for d in yaml.safe_load_all(result.out) if d], result.err


@pytest.mark.parametrize("layout", ["default", "hybrid", "multi-llama", "router", "gateway"])
def test_every_document_is_valid_kubernetes(cli, write_config, layout):
    import kubernetes_validate

    docs, _ = export(cli, layouts(write_config)[layout], "--models-job")
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Secret"} <= {d["kind"] for d in docs}
    for version in VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("layout", ["default", "hybrid", "multi-llama", "router", "gateway"])
def test_every_url_in_env_names_a_service_in_the_output(cli, write_config, layout):
    docs, _ = export(cli, layouts(write_config)[layout])
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    for d in docs:  # the gateway's upstreams too
        for text in (d.get("data") or {}).values():
            for host in re.findall(r"reverse_proxy ([a-z0-9.-]+):\d+", text):
                assert host in services, f"the Caddyfile proxies to {host}, not among {services}"
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                for host in re.findall(r"https?://([a-z0-9.-]+):\d+", e.get("value", "")):
                    assert host in services, f"{e['name']} names {host}, not among {services}"


def test_keys_are_only_in_the_secret(cli, write_config, isolated):
    path = layouts(write_config)["router"]
    docs, err = export(cli, path, "--show-secrets")
    secret = next(d for d in docs if d["kind"] == "Secret")
    keys = [v for v in secret["stringData"].values() if len(v) >= 32]
    assert len(keys) >= 3  # the llama.cpp key, Open WebUI's session key, its copy of the llama.cpp key
    rest = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    assert not any(k in rest for k in keys)
    masked, err = export(cli, path)
    assert set(next(d for d in masked if d["kind"] == "Secret")["stringData"].values()) == {"REPLACE-ME"}
    assert "REPLACE-ME" in err and not any(k in yaml.safe_dump_all(masked) for k in keys)


def test_resources_probes_gpu_and_router_preset(cli, write_config, monkeypatch):
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", "0-3")
    docs, _ = export(cli, write_config(ROUTER + '[services.llamacpp.resources]\nmemory = "8g"\n'),
                     "llamacpp", "--variant", "cuda")
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].endswith(":server-cuda")
    assert c["resources"]["limits"] == {"memory": "8192Mi", "nvidia.com/gpu": 1}
    assert c["resources"]["requests"]["cpu"] == "4"  # max_loaded 2 × 2 threads
    assert c["startupProbe"]["httpGet"]["path"] == "/health" and c["startupProbe"]["failureThreshold"] == 300
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    preset = next(d for d in docs if d["kind"] == "ConfigMap")
    assert "[chat]" in preset["data"]["models.ini"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/airpods/models.ini")
    assert mount["subPath"] == "models.ini" and mount["readOnly"] is True
    rocm, _ = export(cli, None, "llamacpp", "--variant", "rocm")
    limits = next(d for d in rocm if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert limits["resources"]["limits"] == {"amd.com/gpu": 1}


def test_podman_target_has_pods_no_keys_and_skips_what_needs_secrets(cli, isolated):
    docs, err = export(cli, None, "--target", "podman")
    assert [d["kind"] for d in docs] == ["Pod"] and docs[0]["metadata"]["name"] == "llamacpp"
    assert "open-webui" in err and "--target kubernetes" in err
    c = docs[0]["spec"]["containers"][0]
    assert c["args"][-2:] == ["--api-key-file", "/run/secrets/llama-api-key"]
    assert "LLAMA_API_KEY" not in json.dumps(c.get("env", []))
    key = (isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key").read_text().strip()
    assert key not in yaml.safe_dump_all(docs)
    assert c["ports"] == [{"containerPort": 8080, "hostPort": 8080, "hostIP": "127.0.0.1"}]
    named = cli("export", "kube", "open-webui", "--target", "podman")
    assert named.code == 2 and "OPENAI_API_KEYS" in named.err


def test_output_file_with_secrets_is_0600(cli, tmp_path):
    out = tmp_path / "stack.yaml"
    assert cli("export", "kube", "--show-secrets", "-o", str(out)).code == 0
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_the_models_job_takes_manifest_values_as_arguments_never_as_shell_text(cli, write_config, tmp_path,
                                                                               monkeypatch):
    """A revision or a mirror's address recorded in the manifest cannot add a command to the Job."""
    root = tmp_path / "volumes"
    data = root / "airpods_llamacpp_models" / "_data"
    data.mkdir(parents=True)
    model = "SmolLM2-135M-Instruct.Q4_1.gguf"
    (data / model).write_bytes(b"GGUF")
    evil = 'https://mirror.example/org/repo@main"; touch /tmp/pwned; echo "/' + model
    (data / ".airpods-models.json").write_text(json.dumps({model: {"sha256": "a" * 64, "source": evil}}))
    monkeypatch.setenv("AIRPODS_VOLUMES_ROOT", str(root))
    path = write_config(f'[services.llamacpp]\ndefault_model = "{model}"\n')
    docs, _ = export(cli, path, "--models-job")
    [job] = [d for d in docs if d["kind"] == "Job"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    script, *argv = container["args"]
    assert "touch" not in script and "mirror.example" not in script and model not in script
    assert argv[0] == "fetch" and "touch /tmp/pwned" in argv[1] and argv[2:] == [model, "a" * 64]


def test_liveness_is_the_services_own_check_and_the_probe_key_comes_from_the_secret(cli, write_config, isolated):
    docs, _ = export(cli, None)
    deploy = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llamacpp")
    pod = deploy["spec"]["template"]["spec"]
    [box] = pod["containers"]
    live, ready = box["livenessProbe"], box["readinessProbe"]
    assert live["exec"]["command"][:2] == ["sh", "-c"] and "/completion" in live["exec"]["command"][2]
    assert (live["periodSeconds"], live["failureThreshold"]) == (30, 3) and live["timeoutSeconds"] == 32
    assert ready["httpGet"]["path"] == "/health"
    mount = next(m for m in box["volumeMounts"] if m["mountPath"] == "/run/airpods/health.key")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert mount["subPath"] == "health.key" and volume["secret"]["items"][0]["path"] == "health.key"
    assert "hostPath" not in volume  # never a path of this host in a cluster
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"][volume["secret"]["items"][0]["key"]] == "REPLACE-ME"  # without --show-secrets
    shown, _ = export(cli, None, "--show-secrets")
    key = (isolated / "data" / "airpods" / "secrets" / "llamacpp-health-key").read_text().strip()
    secret = next(d for d in shown if d["kind"] == "Secret")
    assert key in secret["stringData"].values()
    assert key not in json.dumps([d for d in shown if d["kind"] != "Secret"])


def test_export_with_keys_over_an_existing_readable_file_leaves_it_0600(cli, write_config, tmp_path):
    import os
    import stat

    out = tmp_path / "stack.yaml"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    result = cli("--config", write_config(""), "export", "kube", "--show-secrets", "-o", str(out))
    assert result.code == 0, result.text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "kind: Secret" in out.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stack.yaml")]  # no temporary left


def test_export_podman_creates_the_key_file_for_a_key_written_in_the_config(cli, write_config, isolated):
    import stat

    path = write_config('[services.llamacpp]\napi_key = "sk-written-in-the-config-0123456789"\n'
                        '[services.open-webui]\nenabled = false\n')
    result = cli("--config", path, "export", "kube", "llamacpp", "--target", "podman")
    assert result.code == 0, result.text
    key_file = isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key.config"
    assert key_file.read_text().strip() == "sk-written-in-the-config-0123456789"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in result.out and "sk-written" not in result.out

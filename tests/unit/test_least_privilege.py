"""Least privilege (plan/hardening.py): under runtime.hardening = "strict" (the default) each kind
gets no capabilities, no new privileges, Podman's init and, where it allows, a read-only root with
its writes in memory; the plan shows it (config render), the containers get it, the exports carry
it, a refusal says what to give back, and "default" hashes as before."""

from __future__ import annotations

import json

import pytest
import yaml

from airpods.plan.hardening import confine
from airpods.plan.spec import Confinement


def render(cli, path: str | None, service: str) -> dict:
    result = cli(*(["--config", path] if path else []), "config", "render", service, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


@pytest.mark.parametrize(("kind", "read_only", "paths"), [
    ("llamacpp", True, ["/tmp"]), ("gateway", True, ["/config", "/tmp"]), ("prometheus", True, ["/tmp"]),
    ("open-webui", False, []), ("ollama", False, [])])
def test_each_kind_drops_every_capability_and_writes_only_where_it_must(kind, read_only, paths):
    c = confine(kind, "strict")
    assert c.cap_drop == ("ALL",) and c.cap_add == () and c.no_new_privileges and c.init is (kind != "prometheus")
    assert c.read_only is read_only and [p for p, _ in c.tmpfs] == paths


def test_generic_gets_no_new_privileges_only_and_default_is_podmans_own():
    assert confine("generic", "strict") == Confinement("strict", no_new_privileges=True)
    assert confine("llamacpp", "default") == Confinement()


def test_a_gpu_container_keeps_a_writable_root_and_a_slot_save_path_is_written_in_memory():
    assert not confine("llamacpp", "strict", devices=True).read_only
    c = confine("llamacpp", "strict", argv=["--slot-save-path", "/slots"])
    assert dict(c.tmpfs) == {"/tmp": "64m", "/slots": "1g"}
    on_volume = confine("llamacpp", "strict", argv=["--slot-save-path=/data/slots"], volume_targets=["/data"])
    assert dict(on_volume.tmpfs) == {"/tmp": "64m"}


def test_render_shows_it_and_a_service_can_ask_for_more(cli, write_config):
    assert render(cli, None, "llamacpp")["security"] == {
        "profile": "strict", "cap_drop": ["ALL"], "cap_add": [], "no_new_privileges": True, "read_only": True,
        "tmpfs": {"/tmp": "64m"}, "init": True}
    path = write_config('[services.llamacpp]\ncap_add = ["cap_chown", "NET_BIND_SERVICE"]\n'
                        'tmpfs = { "/var/cache/x" = "256m" }\n[services.open-webui]\nhardening = "default"\n')
    llama = render(cli, path, "llamacpp")["security"]
    assert llama["cap_add"] == ["CHOWN", "NET_BIND_SERVICE"] and llama["tmpfs"]["/var/cache/x"] == "256m"
    assert render(cli, path, "open-webui")["security"]["profile"] == "default"
    everything = write_config('[runtime]\nhardening = "default"\n')
    assert render(cli, everything, "llamacpp")["security"]["cap_drop"] == []


@pytest.mark.parametrize(("table", "expect"), [
    ('cap_add = ["CAP_FLY"]', "is not a Linux capability"),
    ('tmpfs = { "relative" = "1m" }', "must be an absolute path"),
    ('tmpfs = { "/a" = "lots" }', "is not a size"),
    ('hardening = "paranoid"', "services.llamacpp.hardening")])
def test_bad_least_privilege_settings_are_refused_by_key(cli, write_config, table, expect):
    result = cli("--config", write_config(f"[services.llamacpp]\n{table}\n"), "config", "validate")
    assert result.code == 2 and expect in result.err and "Traceback" not in result.text


def test_the_container_gets_it_and_podman_defaults_hash_as_before(fake, cli, write_config):
    from airpods.runtime.podman_wire import confinement_kwargs

    fake.images.add("localhost/test/web:1")
    path = write_config('[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n'
                        '[services.web]\nkind = "prometheus"\nimage = "localhost/test/web:1"\n')
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    [state] = [s for s in fake.containers.values() if s.name.endswith("web-0")]
    assert state.confinement.cap_drop == ("ALL",) and state.confinement.read_only
    kwargs = confinement_kwargs(state.confinement)
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["no_new_privileges"] and kwargs["read_only"]
    assert "init" not in kwargs  # Prometheus: no init (its image's user cannot start it rootless)
    assert kwargs["mounts"] == [{"type": "tmpfs", "source": "tmpfs", "target": "/tmp", "size": "64m"}]
    # Podman's defaults: the spec hashes as it did before least privilege existed.
    from dataclasses import replace

    spec = next(iter(fake.specs.values()))
    assert replace(spec, confinement=Confinement()).spec_hash != spec.spec_hash
    assert confinement_kwargs(Confinement()) == {}


def test_a_refusal_under_strict_names_its_log_line_and_the_override(fake, cli, write_config):
    fake.images.add("localhost/test/web:1")
    path = write_config('[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n'
                        '[services.web]\nkind = "prometheus"\nimage = "localhost/test/web:1"\n'
                        'ports = [{ host = 19099, container = 9090 }]\nhealth = { path = "/-/ready", timeout = 5 }\n')
    [container] = [c for c in ("config-1-web-0",)]
    fake.exit_on_start[container] = 1
    fake.log_lines[container] = ["starting", "open /etc/x.lock: read-only file system"]
    result = cli("--config", path, "start", "web")
    assert result.code == 1, result.text
    assert 'runtime.hardening = "strict"' in result.err and "read-only file system" in result.err
    assert 'hardening = "default"' in result.err and "tmpfs" in result.err and "cap_add" in result.err


def test_kube_carries_a_security_context_that_validates(cli, write_config):
    import kubernetes_validate

    path = write_config("[services.prometheus]\nenabled = true\n[services.gateway]\nenabled = true\n")
    result = cli("--config", path, "export", "kube")
    assert result.code == 0, result.text
    docs = [d for d in yaml.safe_load_all(result.out) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.29", strict=True)
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}
    llama = pods["llamacpp"]["containers"][0]
    assert llama["securityContext"] == {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True}
    assert {"name": "tmp0", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}} in pods["llamacpp"]["volumes"]
    assert {"name": "tmp0", "mountPath": "/tmp"} in llama["volumeMounts"]
    prom = pods["prometheus"]["containers"][0]["securityContext"]
    assert prom["runAsNonRoot"] is True and prom["runAsUser"] == 65534
    webui = pods["open-webui"]["containers"][0]["securityContext"]
    assert "readOnlyRootFilesystem" not in webui and webui["capabilities"] == {"drop": ["ALL"]}


def test_quadlet_units_carry_it(cli, tmp_path):
    result = cli("export", "quadlet", "-o", str(tmp_path / "units"))
    assert result.code == 0, result.text
    llama = (tmp_path / "units" / "llamacpp.container").read_text()
    for line in ("DropCapability=all", "NoNewPrivileges=true", "ReadOnly=true", "ReadOnlyTmpfs=false",
                 "Tmpfs=/tmp:rw,size=64m", "RunInit=true"):
        assert line in llama.splitlines(), line
    webui = (tmp_path / "units" / "open-webui.container").read_text()
    assert "DropCapability=all" in webui and "ReadOnly=true" not in webui


def test_doctor_lists_what_each_running_container_may_do(fake, cli, write_config, monkeypatch):
    from airpods.probes import caps

    fake.images.add("localhost/test/web:1")
    path = write_config('[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n'
                        '[services.web]\nkind = "prometheus"\nimage = "localhost/test/web:1"\n')
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    monkeypatch.setattr(caps, "privileges", lambda pid: caps.ProcessPrivileges((), True))
    report = json.loads(cli("--config", path, "doctor", "--json").out)
    [row] = report["containers"]
    assert row["service"] == "web" and row["effective_caps"] == [] and row["no_new_privileges"] is True
    assert row["read_only"] is True and row["tmpfs"] == ["/tmp"] and row["cap_drop"] == ["ALL"]
    assert row["init"] is False  # Prometheus runs no init


def test_capabilities_are_read_as_the_kernel_writes_them(tmp_path):
    from airpods.probes.caps import privileges

    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Name:\tx\nCapEff:\t0000000000000401\nNoNewPrivs:\t1\n")
    seen = privileges(42, tmp_path)
    assert seen.effective == ("CHOWN", "NET_BIND_SERVICE") and seen.no_new_privileges
    assert privileges(43, tmp_path) is None and privileges(0, tmp_path) is None


def test_the_program_under_podmans_init_is_found(tmp_path):
    from airpods.probes.caps import main_process

    for pid, comm, ppid in ((10, "catatonit", 1), (11, "llama-server", 10), (12, "llama-server", 11), (20, "sh", 1)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
        (tmp_path / str(pid) / "status").write_text(f"Name:\t{comm}\nPPid:\t{ppid}\n")
    assert main_process(10, tmp_path) == 11 and main_process(20, tmp_path) == 20 and main_process(99, tmp_path) == 99

"""User input never reaches outside what airpods owns; secrets are checked, repaired or refused
without ever being printed; concurrent starts share one lock; low ports are explained rootless."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from airpods.errors import ConfigError, UsageError
from airpods.models.store import ModelStore, check_name
from airpods.orchestrate.lock import HostLock
from airpods.orchestrate.preflight import check_ports, unprivileged_port_start
from airpods.secrets import SecretStore
from tests.unit.builders import DiskRuntime, spec

BAD_NAMES = ["../../canary.gguf", "/etc/passwd", "/tmp/x.gguf", "a/b.gguf", "..gguf", "x..gguf", ".hidden.gguf",
             "", "model", "model.bin", "a b.gguf", "..", "sub/../x.gguf"]


@pytest.fixture
def store(tmp_path):
    rt = DiskRuntime(root=tmp_path / "volumes")
    rt.ensure_volume("models")
    return ModelStore(rt, "models")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_bad_model_name_is_refused(name):
    with pytest.raises(UsageError) as err:
        check_name(name)
    assert "plain file name" in err.value.message


@pytest.mark.parametrize("name", ["../canary.gguf", "/abs/canary.gguf"])
def test_models_rm_never_touches_a_file_outside_the_volume(store, tmp_path, name, cli):
    canary = tmp_path / "canary.gguf"
    canary.write_bytes(b"GGUF precious")
    with pytest.raises(UsageError):
        store.remove(str(canary) if name.startswith("/") else name)
    assert canary.read_bytes() == b"GGUF precious"
    result = cli("models", "rm", str(canary), "--yes")  # checked before Podman is even asked
    assert result.code == 2 and "plain file name" in result.err and "Traceback" not in result.text
    assert canary.exists()


def test_a_symlink_in_the_volume_leading_out_is_not_followed(store, tmp_path):
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"GGUF")
    root = Path(store.runtime.volume_path("models"))
    (root / "link.gguf").symlink_to(outside)
    with pytest.raises(UsageError) as err:
        store.remove("link.gguf")
    assert "link" in err.value.message and outside.exists()
    src = tmp_path / "new.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(UsageError):
        store.import_file(src, "link.gguf", force=True)
    assert outside.read_bytes() == b"GGUF"


def test_import_name_is_checked_before_anything(cli, tmp_path):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 64)
    result = cli("models", "import", str(src), "--name", "../evil.gguf")
    assert result.code == 2 and "plain file name" in result.err


def test_full_volume_import_keeps_nothing_partial_and_manifest_intact(store, tmp_path, monkeypatch):
    import errno

    first = tmp_path / "first.gguf"
    first.write_bytes(b"GGUF" + b"\1" * 1000)
    store.import_file(first)
    root = Path(store.runtime.volume_path("models"))
    manifest = (root / ".airpods-models.json").read_text()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    second = tmp_path / "second.gguf"
    second.write_bytes(b"GGUF" + b"\2" * 1000)
    with pytest.raises(Exception) as err:
        store.import_file(second)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "no space left" in str(err.value.message) and "intact" in err.value.message
    assert sorted(p.name for p in root.iterdir()) == [".airpods-models.json", ".airpods-models.lock", "first.gguf"]
    assert (root / ".airpods-models.json").read_text() == manifest


# secrets -----------------------------------------------------------------------------------------
def test_secret_with_loose_permissions_is_repaired(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    key = store.get("x-api-key")
    path = tmp_path / "secrets" / "x-api-key"
    os.chmod(path, 0o644)
    os.chmod(tmp_path / "secrets", 0o755)
    assert store.get("x-api-key") == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


@pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"\xff\xfe\n"])
def test_secret_with_bad_content_is_a_clear_error_without_the_value(tmp_path, content):
    store = SecretStore(tmp_path / "secrets")
    store.get("x-api-key")
    (tmp_path / "secrets" / "x-api-key").write_bytes(content)
    with pytest.raises(ConfigError) as err:
        store.get("x-api-key")
    assert "x-api-key" in err.value.message and "rm " in (err.value.hint or "")
    if content.strip():
        assert "two words" not in err.value.message + (err.value.hint or "")


def test_secret_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "secrets").mkdir(mode=0o700)
    (tmp_path / "elsewhere").write_text("stolen-key\n")
    (tmp_path / "secrets" / "x-api-key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as err:
        SecretStore(tmp_path / "secrets").get("x-api-key")
    assert "not a regular file" in err.value.message and "stolen-key" not in err.value.message


def test_bad_secret_through_the_cli_exits_2_without_printing_it(cli, isolated):
    assert cli("config", "render", "llamacpp", "--json", "--show-secrets").code == 0  # creates the key
    key_file = isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key"
    key_file.write_text("has a space\n")
    result = cli("config", "render", "llamacpp", "--json", "--show-secrets")
    assert result.code == 2 and "llamacpp-api-key" in result.err and "has a space" not in result.text
    assert "Traceback" not in result.text


def test_concurrent_secret_creation_agrees_on_one_value(tmp_path):
    values: list[str] = []
    threads = [threading.Thread(target=lambda: values.append(SecretStore(tmp_path / "s").get("k")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(values)) == 1 and sorted(p.name for p in (tmp_path / "s").iterdir()) == ["k"]


# lock and ports ------------------------------------------------------------------------------------
def test_host_lock_excludes_other_holders_and_is_shared_by_threads_of_one(tmp_path):
    path = tmp_path / "start.lock"
    one = HostLock(path)
    waited: list[bool] = []
    events: list[str] = []
    with one, one:  # re-entered by threads of the same airpods process: no deadlock
        other = HostLock(path, on_wait=lambda: waited.append(True))

        def contender():
            with other:
                events.append("other got it")

        t = threading.Thread(target=contender)
        t.start()
        time.sleep(0.2)
        events.append("first releases")
    t.join(5)
    assert waited == [True] and events == ["first releases", "other got it"]


def test_rootless_low_port_names_the_sysctl():
    low = spec("web", ports=(spec("x").ports[0].__class__(80, 8080),))
    if unprivileged_port_start() <= 80:
        pytest.skip("this machine lets anyone bind port 80")
    with pytest.raises(UsageError) as err:
        check_ports([low], rootless=True)
    text = err.value.message + " ".join(err.value.details) + (err.value.hint or "")
    assert "net.ipv4.ip_unprivileged_port_start" in text and "host = 8080" in text

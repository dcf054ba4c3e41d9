"""Where a private Podman service's socket lives: one folder per user, shared by airpods' commands
and the health watcher, and only when it is a folder of this user that no one else may enter."""

from __future__ import annotations

import os

from airpods.runtime.connect import private_dir


def test_the_shared_folder_is_made_private_and_reused(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    first = private_dir(env)
    assert first == tmp_path / f"airpods-podman-{os.geteuid()}"
    assert oct(first.stat().st_mode & 0o777) == "0o700"
    assert private_dir(env) == first


def test_a_folder_others_may_enter_or_a_link_is_not_used(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    folder = tmp_path / f"airpods-podman-{os.geteuid()}"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    assert private_dir(env) is None
    folder.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.symlink_to(elsewhere)
    assert private_dir(env) is None


def test_systemd_timers_need_systemd_and_for_a_user_their_session(tmp_path):
    from airpods.probes.systemd import timers_available

    assert not timers_available({}, 0, root=str(tmp_path))  # no /run/systemd/system: PID 1 is not systemd
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert timers_available({}, 0, root=str(tmp_path))
    assert not timers_available({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, root=str(tmp_path))
    (tmp_path / "run" / "user" / "1000" / "systemd").mkdir(parents=True)
    (tmp_path / "run" / "user" / "1000" / "systemd" / "private").touch()
    assert timers_available({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, root=str(tmp_path))

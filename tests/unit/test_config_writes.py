"""`models use` changing the user's config file where others may write the folder: never through a
link someone planted, one changer at a time, and never over an edit saved meanwhile."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import llama_config, with_models
from tests.podman_env import free_port


def test_a_link_planted_at_the_old_temporary_name_changes_nothing_of_its_target(fake, cli, tmp_path):
    with_models(fake, "m1.gguf", "m2.gguf")
    folder = tmp_path / "shared"
    folder.mkdir()
    config, victim = folder / "config.toml", tmp_path / "victim.txt"
    config.write_text(llama_config(free_port(), router=True, head="# my router"))
    victim.write_text("someone else's file\n")
    (folder / ".config.toml.airpods-tmp").symlink_to(victim)  # the fixed name an older airpods wrote through
    result = cli("--config", str(config), "models", "use", "m2.gguf")
    assert result.code == 0, result.text
    assert victim.read_text() == "someone else's file\n"
    assert not config.is_symlink() and "m2.gguf" in config.read_text() and "# my router" in config.read_text()
    assert not list(folder.glob(".config.toml.*.airpods-tmp"))  # nothing left behind


def test_an_edit_saved_while_it_works_is_kept_and_the_change_refused(fake, cli, tmp_path, monkeypatch):
    from airpods.config import edit

    with_models(fake, "m1.gguf", "m2.gguf")
    config = tmp_path / "config.toml"
    config.write_text(llama_config(free_port(), router=True, head="# my router"))
    real = edit.add_router_model

    def and_a_person_saves(path, text, *args):
        change = real(path, text, *args)
        config.write_text(text + "# saved from an editor meanwhile\n")
        return change

    monkeypatch.setattr(edit, "add_router_model", and_a_person_saves)
    result = cli("--config", str(config), "models", "use", "m2.gguf")
    assert result.code == 2 and "changed while airpods was changing it" in result.err, result.text
    assert config.read_text().endswith("# saved from an editor meanwhile\n") and "m2.gguf" not in config.read_text()


WRITER = """
import sys
from pathlib import Path
from airpods.config import edit
path, model = Path(sys.argv[1]), sys.argv[2]
with edit.locked(path):
    text = path.read_text()
    change = edit.add_router_model(path, text, "llamacpp", model, model + ".gguf")
    edit.write(change)
"""


def test_changers_at_the_same_time_each_keep_their_change(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(llama_config(8080, router=True))
    for _round in range(3):
        names = [f"x{_round}{i}" for i in range(8)]
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(config), n]) for n in names]
        assert [p.wait(60) for p in procs] == [0] * 8
        import tomllib

        models = tomllib.loads(config.read_text())["services"]["llamacpp"]["models"]
        assert set(names) <= set(models), sorted(models)

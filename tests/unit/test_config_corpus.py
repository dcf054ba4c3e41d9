"""Every broken config in tests/corpus: exit 2, every expected message, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = sorted((Path(__file__).parent.parent / "corpus").glob("*.toml"))


def expectations(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_broken_config_is_reported(path: Path, cli, isolated):
    result = cli("--config", str(path), "config", "validate")
    assert result.code == 2, result.text
    for expected in expectations(path):
        assert expected in result.err, f"{expected!r} not in:\n{result.err}"
    assert "Traceback" not in result.text
    # Nothing was created: no secrets, no data dir.
    assert not (isolated / "data").exists()


@pytest.mark.parametrize("path", CORPUS[:5], ids=lambda p: p.stem)
def test_broken_config_never_breaks_help_or_version(path: Path, cli):
    assert cli("--config", str(path), "--help").code == 0
    assert cli("--config", str(path), "--version").code == 0


def test_errors_name_file_and_line(cli, write_config):
    path = write_config("[services.llamacpp]\nenabled = true\nports = [{ host = 70000, container = 8080 }]\n")
    result = cli("--config", path, "config", "validate")
    assert result.code == 2
    assert f"{path}:3" in result.err


def test_all_problems_listed_at_once(cli, write_config):
    path = write_config('[runtim]\n[services.llamacpp]\nenabled = "x"\n[services.ollama]\nimage = "ollama"\n')
    result = cli("--config", path, "config", "validate")
    assert result.code == 2
    for needle in ("runtim", "services.llamacpp.enabled", "services.ollama"):
        assert needle in result.err

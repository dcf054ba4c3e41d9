"""The exit codes README.md gives: 70 for an internal error (without a traceback unless --debug),
130 for an interrupt."""

from __future__ import annotations

import pytest

from airpods.cli import main as cli_main


def test_an_unexpected_error_exits_70_with_no_traceback(monkeypatch, cli):
    def broken(*args, **kwargs):
        raise RuntimeError("boom with Bearer sk-secret")

    monkeypatch.setattr(cli_main.cli, "main", broken)
    result = cli("status")
    assert result.code == 70
    assert "internal error: RuntimeError" in result.err and "Traceback" not in result.err
    assert "sk-secret" not in result.err  # a key in the message is cut out


def test_an_interrupt_exits_130(monkeypatch, cli):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.cli, "main", interrupted)
    result = cli("status")
    assert result.code == 130 and "Interrupted." in result.err


def test_the_readme_names_every_exit_code():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    line = text[text.index("Exit codes:"):text.index("Exit codes:") + 600]
    assert all(f"`{code}`" in line for code in (0, 1, 2, 70, 130))


@pytest.mark.parametrize("code", [1, 2])
def test_airpods_errors_keep_their_codes(code):
    from airpods.errors import AirpodsError, ConfigError

    assert (ConfigError if code == 2 else AirpodsError)("x").exit_code == code

"""The output contract on a real terminal: no console that prints a user's or a server's text reads
it as Rich markup (bracketed text once vanished: "services.x: [config changed: ...]" printed as
"services.x: ")."""

from __future__ import annotations

import io

import pytest

from airpods.cli.live import LiveReporter
from airpods.cli.terminal import Terminal

BRACKETED = "services.x: [config changed: image] [bold]not bold[/bold] [/x]"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def tty(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    err, out = Tty(), Tty()
    return Terminal(stderr=err, stdout=out), err, out


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_every_message_verb_shows_bracketed_text_as_written(tty):
    term, err, _ = tty
    assert term.interactive
    for say in (term.info, term.success, term.warning, term.error, term.detail):
        say(BRACKETED)
    shown = _plain(err.getvalue())
    assert shown.count(BRACKETED) == 5


def test_a_table_and_the_status_spinner_show_it_as_written(tty):
    term, err, out = tty
    term.table(["service", "why"], [["x", BRACKETED]])
    assert "[config changed: image]" in _plain(out.getvalue()) and "[/x]" in _plain(out.getvalue())
    with term.status(BRACKETED):
        pass
    with term.bytes_progress(BRACKETED) as update:
        update(1, 2)


def test_the_live_reporter_shows_it_as_written(tty):
    term, err, _ = tty
    with LiveReporter(term) as live:
        live.stage("x", BRACKETED, 0.5)
        live.info(BRACKETED)
        live.warning(BRACKETED)
    shown = _plain(err.getvalue())
    assert "[config changed: image]" in shown and "[bold]not bold[/bold]" in shown and shown.count("[/x]") >= 2

"""What a server, a model or a hub sends is shown as text: on a terminal its control characters
(OSC 0 title, OSC 52 clipboard write, OSC 8 link, screen clear, C1 controls) are dropped, and no
console parses it as Rich markup. Pipes get the bytes as they came."""

from __future__ import annotations

import io
import json

from airpods.cli.terminal import Terminal, printable

NASTY = ("answer\x1b]0;pwned title\x07 \x1b]52;c;ZXZpbA==\x07 \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ "
         "\x1b[2J\x9b31m [/x] [bold]not bold[/bold]\ttab\nline two")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_printable_keeps_text_tabs_and_newlines_and_drops_what_a_terminal_obeys():
    shown = printable(NASTY)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "answer" in shown and "[/x]" in shown and "\ttab\nline two" in shown


def test_a_streamed_answer_reaches_a_terminal_without_escapes_and_a_pipe_as_it_came(monkeypatch):
    from airpods.cli import chat_loop

    tty = Tty()
    monkeypatch.setattr("sys.stdout", tty)
    for piece in ("ans\x1b", "]52;c;ZXZpbA==\x07wer"):  # an escape split across two pieces
        chat_loop._write(piece)
    assert tty.getvalue() == "ans]52;c;ZXZpbA==wer"
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stdout", pipe)
    chat_loop._write(NASTY)
    assert pipe.getvalue() == NASTY


def test_tables_messages_and_lines_on_a_terminal_are_text(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = Tty(), Tty()
    terminal = Terminal(stdout=out, stderr=err)
    terminal.table(["ID"], [[NASTY]])
    terminal.print(NASTY)
    terminal.error(f"the server said: {NASTY}")
    for text in (out.getvalue(), err.getvalue()):
        assert "\x1b]" not in text and "\x9b" not in text and "\x07" not in text
    assert "[/x] [bold]not bold[/bold]" in out.getvalue()  # markup shown as written, not parsed
    assert "[/x]" in err.getvalue()


def test_top_s_live_table_takes_a_model_id_that_looks_like_markup(monkeypatch):
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from airpods.cli.commands.top import COLUMNS, _cells

    row = {"service": "router", "model": "[/x]\x1b]0;t\x07", "kind": "llamacpp-model", "state": "loaded",
           "why": None, "cpu_percent": None, "memory_bytes": None, "vram": {}, "slots_busy": 0, "slots_total": 1}
    table = Table()
    for column in COLUMNS:
        table.add_column(column)
    table.add_row(*(Text(printable(c)) for c in _cells(row)))  # as the live view builds it
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True).print(table)
    assert "[/x]" in out.getvalue() and "\x1b]0;" not in out.getvalue()


def test_the_live_reporter_prints_data_as_text(monkeypatch):
    from airpods.cli.live import LiveReporter

    monkeypatch.delenv("NO_COLOR", raising=False)
    err = Tty()
    terminal = Terminal(stderr=err)
    monkeypatch.setattr(Terminal, "interactive", property(lambda self: True))
    with LiveReporter(terminal) as live:
        live.stage("web", "model [/x]: loading\x1b]52;c;eA==\x07", 0.1)
        live.warning("services.x: [config changed: a] \x1b[2J")
        live.info("[/bold] plain")
    text = err.getvalue()
    assert "[config changed: a]" in text and "[/bold] plain" in text and "\x1b]52" not in text
    assert "\x1b[2J" not in text


def test_logs_on_a_terminal_are_text(fake, cli, write_config, monkeypatch):
    fake.images.add("localhost/test/web:1")
    path = write_config('[services.llamacpp]\nenabled = false\n[services.open-webui]\nenabled = false\n'
                        '[services.web]\nimage = "localhost/test/web:1"\n')
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    [container] = list(fake.containers)
    fake.log_lines[container] = [NASTY.replace("\n", " ")]
    tty = Tty()
    monkeypatch.setattr("sys.stdout", tty)
    from airpods.cli.main import main

    try:
        main(["--config", path, "logs", "web"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    assert "answer" in tty.getvalue() and "\x1b" not in tty.getvalue()
    assert json.dumps(NASTY)  # (JSON output escapes controls by itself)

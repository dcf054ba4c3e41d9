"""The one terminal layer: semantic verbs for people on stderr, machine output on stdout.

Rich is imported only when something is drawn on a terminal. Colour and live displays are off
when stderr is not a terminal or NO_COLOR is set; messages are then plain lines."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

from airpods.errors import AirpodsError

# C0 controls but tab and newline, DEL, C1 controls: what starts an escape sequence on a terminal
# (a title, a clipboard write, a link, a cleared screen) or moves its cursor.
_CONTROLS = {c: None for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """`text` without the characters a terminal acts on (anything a server, a model or a hub sent
    is shown as text, never obeyed); newlines and tabs stay."""
    return text.translate(_CONTROLS)


def is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class Terminal:
    def __init__(self, *, stderr: Any = None, stdout: Any = None):
        self._err = stderr or sys.stderr
        self._out = stdout or sys.stdout

    @property
    def interactive(self) -> bool:
        return bool(getattr(self._err, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR") \
            and os.environ.get("TERM") != "dumb"

    @cached_property
    def console(self) -> Any:
        from rich.console import Console

        # On a terminal, wrap at word boundaries; in logs and pipes keep each message on one line.
        # No emoji codes: a fingerprint's ":AB:" or a model named ":ok:" is text. No markup: every
        # message may quote a user's or a server's text ("[config changed: ...]" is shown as written);
        # styles come as Text spans.
        return Console(file=self._err, no_color=not self.interactive, highlight=False, emoji=False, markup=False,
                       force_terminal=self.interactive or None, soft_wrap=not self.interactive,
                       width=None if self.interactive else 120)

    @cached_property
    def out_console(self) -> Any:
        from rich.console import Console

        tty = bool(getattr(self._out, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")
        # markup off: what it prints is data (a model id "[/x]" is text, not the end of a style)
        return Console(file=self._out, no_color=not tty, highlight=False, emoji=False, soft_wrap=True,
                       width=None if tty else 160, markup=False)

    def _say(self, style: str, prefix: str, message: str) -> None:
        if is_tty(self._err):  # a message may quote a server; a terminal never gets its escapes
            message = printable(message)
        if not self.interactive:  # logs, pipes, NO_COLOR: the line as it is, one line per message
            self._err.write(f"{prefix}{message}\n")
            self._err.flush()
            return
        from rich.text import Text

        self.console.print(Text.assemble((prefix, style), message))

    def info(self, message: str) -> None:
        self._say("cyan", "", message)

    def success(self, message: str) -> None:
        self._say("green", "✓ ", message)

    def warning(self, message: str) -> None:
        self._say("bold yellow", "warning: ", message)

    def error(self, message: str) -> None:
        self._say("bold red", "error: ", message)

    def detail(self, message: str) -> None:
        self._say("dim", "  ", message)

    def failure(self, exc: AirpodsError) -> None:
        self.error(exc.message)
        for line in exc.details:
            self.detail(line)
        if exc.hint:
            self._say("yellow", "hint: ", exc.hint)

    @contextlib.contextmanager
    def bytes_progress(self, description: str) -> Iterator[Callable[[int, int | None], None]]:
        """A byte progress bar with speed and time left on a terminal; elsewhere (logs, pipes) one
        line per file when it is done. Yields an update(done, total) callback."""
        if not self.interactive:
            import time

            began, seen = time.monotonic(), [0]

            def note(done: int, total: int | None) -> None:
                seen[0] = done

            yield note
            took = max(time.monotonic() - began, 1e-6)
            self.info(f"{description}: {seen[0] / 1e6:.1f} MB in {took:.1f}s ({seen[0] / 1e6 / took:.1f} MB/s)")
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something is under way (interactive terminals only)."""
        if not self.interactive:
            yield
            return
        from rich.text import Text

        with self.console.status(Text(printable(message))):  # a str would be read as markup
            yield

    def print_json(self, data: Any, shape: Any = None) -> None:
        """A command's JSON on stdout; `shape` is its contract (cli/contract.py), which the tests check."""
        self._out.write(json.dumps(data, indent=2, default=str) + "\n")
        self._out.flush()

    def print(self, text: str = "") -> None:
        self._out.write((printable(text) if is_tty(self._out) else text) + "\n")
        self._out.flush()

    def table(self, columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
        """Rich on a terminal; plain aligned columns otherwise (pipes, logs, scripts)."""
        tty = bool(getattr(self._out, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")
        if not tty:
            cells = [columns, *[["" if c is None else str(c) for c in row] for row in rows]]
            widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
            if title:
                self.print(title)
            for r in cells:
                self.print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            return
        self.out_console.print(self.rich_table(columns, rows, title=title))

    @staticmethod
    def rich_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> Any:
        """The one Rich table of data (table(), top's live view): every cell text, never markup."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")  # never hide part of a URL or image name
        for row in rows:  # cells are text, never markup: "[config changed: ...]" must show as written
            table.add_row(*(Text(printable("" if cell is None else str(cell))) for cell in row))
        return table

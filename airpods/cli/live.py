"""Live progress for long work: one status line per service, pull progress bars.

Interactive terminals get a Rich live display; otherwise each change is printed once as a plain
line on stderr (logs and CI stay readable)."""

from __future__ import annotations

import threading
import time
from typing import Any

from airpods.cli.terminal import Terminal, printable
from airpods.runtime.port import PullProgress


class LiveReporter:
    def __init__(self, terminal: Terminal):
        self.terminal = terminal
        self.lock = threading.Lock()
        self.stages: dict[str, tuple[str, float]] = {}
        self.printed: dict[str, str] = {}
        self.pulls: dict[str, dict[str, Any]] = {}  # image -> {layers: {id: (cur, tot)}, state}
        self.live: Any = None
        self.began = time.monotonic()

    # context manager: the live display runs only while work is under way
    def __enter__(self) -> LiveReporter:
        if self.terminal.interactive:
            from rich.live import Live

            self.live = Live(get_renderable=self._render, console=self.terminal.console,
                             refresh_per_second=10, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            table = Table.grid(padding=(0, 1))
            for image, info in self.pulls.items():
                cur = sum(c for c, _ in info["layers"].values())
                tot = sum(t for _, t in info["layers"].values()) or None
                size = f"{cur / 1e6:.0f}/{tot / 1e6:.0f} MB" if tot else ""
                bar = ProgressBar(total=tot or 100, completed=cur if tot else 0, width=30)
                table.add_row(Text(info["state"], style="bold"), Text(printable(image)), bar, size)
            for service, (stage, elapsed) in self.stages.items():
                done = stage in ("healthy", "failed") or stage.startswith("already")
                icon = Text("✓", style="green") if stage == "healthy" or stage.startswith("already") else (
                    Text("✗", style="red") if stage == "failed" else Spinner("dots"))
                table.add_row(icon, Text(service, style="bold"), Text(printable(stage)), "" if done and not elapsed
                              else f"{elapsed:.1f}s")
            return Group(table)

    def _plain(self, key: str, text: str) -> None:
        if self.live is None and self.printed.get(key) != text:
            self.printed[key] = text
            self.terminal.info(text)

    def stage(self, service: str, stage: str, elapsed: float) -> None:
        with self.lock:
            self.stages[service] = (stage, elapsed)
        suffix = f" ({elapsed:.1f}s)" if stage == "healthy" else ""
        self._plain(f"stage:{service}", f"{service}: {stage}{suffix}")

    def info(self, message: str) -> None:
        if self.live is not None:
            self.live.console.print(printable(message), markup=False)
        else:
            self.terminal.info(message)

    def warning(self, message: str) -> None:
        if self.live is not None:
            from rich.text import Text

            self.live.console.print(Text.assemble(("warning: ", "bold yellow"), printable(message)))
        else:
            self.terminal.warning(message)

    def pull(self, progress: PullProgress) -> None:
        with self.lock:
            info = self.pulls.setdefault(progress.image, {"layers": {}, "state": "pulling"})
            if progress.layer and progress.total:
                info["layers"][progress.layer] = (progress.current or 0, progress.total)
            if progress.status in ("Pulled", "Failed"):
                info["state"] = "pulled" if progress.status == "Pulled" else "failed"
        if progress.status == "Pulling":
            self._plain(f"pull:{progress.image}", f"pulling {progress.image}")
        elif progress.status == "Pulled":
            self._plain(f"pull:{progress.image}", f"pulled {progress.image}")
        elif progress.status == "Failed":
            self._plain(f"pull:{progress.image}", f"pull failed: {progress.error}")

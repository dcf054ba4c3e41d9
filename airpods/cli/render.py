"""What more than one command shows the same way."""

from __future__ import annotations

from typing import Any


def report_stopped(app: Any, results: list) -> None:
    if not results:
        app.terminal.info(f"nothing to stop in project '{app.stack.project}'")
    for r in results:
        note = f" [{r.note}]" if r.note else ""
        if r.result in ("stopped", "removed"):
            app.terminal.success(f"{r.service}: {r.result} ({r.seconds:.1f}s){note}")
        else:
            app.terminal.info(f"{r.service}: {r.result}{note}")

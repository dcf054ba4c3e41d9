"""Whether a process airpods recorded by its pid (a start's hold, an import's partial file) still
runs: True, False (no such process), or None (a process of another user has that pid now)."""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None
    return True

"""Whether Podman can run health checks from systemd timers here: it creates a transient timer
per container through the systemd of the user it runs as. Without one (no systemd as PID 1, or
a rootless user with no user session) Podman logs an error and never runs the checks."""

from __future__ import annotations

import os
from collections.abc import Mapping


def timers_available(environ: Mapping[str, str], euid: int, root: str = "/") -> bool:
    if not os.path.isdir(os.path.join(root, "run/systemd/system")):  # systemd is not PID 1
        return False
    if euid == 0:
        return True
    runtime_dir = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{euid}"
    return os.path.exists(os.path.join(root, runtime_dir.lstrip("/"), "systemd/private"))

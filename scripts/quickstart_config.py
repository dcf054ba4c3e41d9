"""Make the quickstart's locally built llama.cpp image what `airpods start llamacpp` (and
`llamacpp-ui`, the same server with its own web page) use.

    quickstart_config.py CONFIG IMAGE           # exit 0: CONFIG uses IMAGE (created, or merged with a yes)
    quickstart_config.py CONFIG IMAGE --write   # write CONFIG as a small file of its own

A missing CONFIG is created. An existing one is changed only when the user says yes on a terminal
(a copy is kept as CONFIG.bak); otherwise the exact lines to add are printed and the exit code is 1.

A file it writes anew moves llama.cpp's ports (runtime.llamacpp_base_port) off 8080 when another
program holds 8080 or 8081 (another user's airpods, any server), and says so; this user's own
running llamacpp on that port keeps it. AIRPODS_QUICKSTART_PORT sets the port looked at (tests).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import tomlkit

HEADER = "# Written by scripts/quickstart.sh: use the locally built llama-server image.\n"


SERVICES = ("llamacpp", "llamacpp-ui")


def lines(image: str) -> str:
    return "".join(f'[services.{name}]\nimages = {{ cpu = "{image}" }}\n' for name in SERVICES)


def taken(port: int) -> bool:
    """Whether something listens on (or holds) 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def own_llamacpp_port() -> int | None:
    """The host port of this user's running llamacpp (default project), if airpods runs one."""
    try:
        out = subprocess.run([sys.executable, "-m", "airpods", "status", "llamacpp", "--json"], capture_output=True,
                             text=True, timeout=60, check=False)
        rows = json.loads(out.stdout) if out.returncode == 0 else []
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    for row in rows:
        if row.get("state") == "running" and row.get("url"):
            port = row["url"].split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[-1]
            return int(port) if port.isdigit() else None
    return None


def base_port() -> tuple[int, str]:
    """(llama.cpp's first host port for a new config, a line saying why when it is not the usual)."""
    wanted = int(os.environ.get("AIRPODS_QUICKSTART_PORT", "8080"))
    busy = [p for p in (wanted, wanted + 1) if taken(p)]
    if not busy or own_llamacpp_port() in busy:
        return wanted, ""
    for port in range(wanted + 10, min(wanted + 1000, 65534), 10):
        if not taken(port) and not taken(port + 1):
            return port, (f"port {busy[0]} is taken on this machine by another program: llama.cpp will listen "
                          f"on {port} (runtime.llamacpp_base_port in the config)")
    return wanted, f"port {busy[0]} is taken and no free pair of ports was found near it"


def runtime_lines(moved_to: int | None, project: bool) -> str:
    out = ['project = "default"   # the same scope as ~/.config/airpods/config.toml'] if project else []
    out += [f"llamacpp_base_port = {moved_to}   # the usual port was taken when the quickstart ran"] \
        if moved_to is not None else []
    return "[runtime]\n" + "\n".join(out) + "\n\n" if out else ""


def write(path: Path, text: str) -> None:
    from airpods.secrets import write_atomic  # run with the .venv's python, where airpods is installed

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, 0o644)


def main(argv: list[str]) -> int:
    path, image = Path(argv[0]), argv[1]
    if "--write" in argv[2:] or not path.exists():
        port, why = base_port()
        if why:
            print(why, file=sys.stderr)
        moved = port if port != int(os.environ.get("AIRPODS_QUICKSTART_PORT", "8080")) else None
        write(path, HEADER + runtime_lines(moved, "--write" in argv[2:]) + lines(image))
        print(f"wrote {path}: llamacpp uses {image}", file=sys.stderr)
        return 0
    text = path.read_text(encoding="utf-8")
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        print(f"{path} is not valid TOML ({exc}); add these lines yourself:\n\n{lines(image)}", file=sys.stderr)
        return 1
    tables = [doc.get("services", {}).get(name, {}) for name in SERVICES]
    if all(t.get("image") == image or t.get("images", {}).get("cpu") == image for t in tables):
        print(f"{path} already uses {image}", file=sys.stderr)
        return 0
    question = (f"Add `images = {{ cpu = \"{image}\" }}` to [services.llamacpp] and [services.llamacpp-ui] "
                f"in {path}? [y/N] ")
    if sys.stdin.isatty() and input(question).strip().lower() in ("y", "yes"):
        services = doc.setdefault("services", tomlkit.table(is_super_table=True))
        for name in SERVICES:
            table = services.setdefault(name, tomlkit.table())
            images = table.setdefault("images", tomlkit.inline_table())
            images["cpu"] = image
            table.pop("image", None)
        write(path.with_name(path.name + ".bak"), text)
        write(path, tomlkit.dumps(doc))
        print(f"updated {path} (the old one is {path.name}.bak)", file=sys.stderr)
        return 0
    print(f"{path} was left as it is. To use the local image without --config, add:\n\n{lines(image)}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Make the quickstart's locally built llama.cpp image what `airpods start llamacpp` (and
`llamacpp-ui`, the same server with its own web page) use.

    quickstart_config.py CONFIG IMAGE           # exit 0: CONFIG uses IMAGE (created, or merged with a yes)
    quickstart_config.py CONFIG IMAGE --write   # write CONFIG as a small file of its own

A missing CONFIG is created. An existing one is changed only when the user says yes on a terminal
(a copy is kept as CONFIG.bak); otherwise the exact lines to add are printed and the exit code is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomlkit

HEADER = "# Written by scripts/quickstart.sh: use the locally built llama-server image.\n"


SERVICES = ("llamacpp", "llamacpp-ui")


def lines(image: str) -> str:
    return "".join(f'[services.{name}]\nimages = {{ cpu = "{image}" }}\n' for name in SERVICES)


def write(path: Path, text: str) -> None:
    from airpods.secrets import write_atomic  # run with the .venv's python, where airpods is installed

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, 0o644)


def main(argv: list[str]) -> int:
    path, image = Path(argv[0]), argv[1]
    if "--write" in argv[2:]:
        write(path, HEADER + '[runtime]\nproject = "default"   # the same scope as ~/.config/airpods/config.toml\n\n'
              + lines(image))
        return 0
    if not path.exists():
        write(path, HEADER + lines(image))
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

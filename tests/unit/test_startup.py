"""`airpods --help` must stay light: no podman, jinja2, pydantic, requests (or rich)."""

import subprocess
import sys

HEAVY = ("podman", "jinja2", "pydantic", "requests", "rich")


def loaded_after(args: list[str]) -> set[str]:
    code = "\n".join([
        "import sys",
        "from airpods.cli.main import main",
        "try:",
        f"    main({args!r})",
        "except SystemExit:",
        "    pass",
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stderr.strip().splitlines()[-1].split(","))


def test_help_imports_no_heavy_modules():
    assert not loaded_after(["--help"]) & set(HEAVY)


def test_version_imports_no_heavy_modules():
    assert not loaded_after(["--version"]) & set(HEAVY)


def test_subcommand_help_imports_no_heavy_modules():
    for command in ("start", "status", "config", "models"):
        assert not loaded_after([command, "--help"]) & {"podman", "jinja2", "pydantic", "requests"}


def test_unknown_command_suggests_and_exits_2():
    out = subprocess.run([sys.executable, "-m", "airpods", "strat"], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "Did you mean 'start'" in out.stderr and "Traceback" not in out.stderr

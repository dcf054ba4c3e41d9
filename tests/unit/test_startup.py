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


def test_podman_py_loads_without_rich_progress_and_rich_still_works():
    """podman-py imports Rich's progress module only for a pull progress bar airpods never asks for
    (~25 ms of a start); it is kept out while podman-py loads, and works for airpods afterwards."""
    code = "\n".join([
        "import sys",
        "from airpods.runtime.podman_adapter import podman_client_class",
        "cls = podman_client_class()",
        "import podman.domain.images_manager as images",
        "print(cls.__name__, 'rich.progress' in sys.modules, images.Progress)",
        "from rich.progress import Progress",
        "print(Progress.__name__)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PodmanClient", "False", "None", "Progress"]


def test_the_installed_command_keeps_exit_codes_and_flushes_output(tmp_path):
    """`airpods` leaves without interpreter teardown: its output must still arrive whole and its
    exit code stay what main() said (0, 2 for a usage error)."""
    import json
    import os

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "d"),
           "XDG_CACHE_HOME": str(tmp_path / "k"), "AIRPODS_GPU": "cpu"}
    env.pop("AIRPODS_CONFIG", None)
    rendered = subprocess.run([sys.executable, "-m", "airpods", "config", "render", "llamacpp", "--json"],
                              capture_output=True, text=True, env=env, check=False)
    assert rendered.returncode == 0, rendered.stderr
    assert json.loads(rendered.stdout)["service"] == "llamacpp"
    bad = subprocess.run([sys.executable, "-m", "airpods", "start", "--timeout", "0"],
                         capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

"""An unprivileged user with rootless Podman, set up from root (as CI runs): the user, a usable
/dev/net/tun (udev makes it 0666 on a standard install; these machines ship it 0600), airpods
installed for that user, the locally built llama-server image (`podman save` / `podman load`)
and the SmolLM2 model in a place the user can read."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.podman_env import LLAMA_IMAGE, TEST_LABEL, need, podman

ROOT = Path(__file__).resolve().parents[2]
USER = "airpods-rl"
PYTHON = "/usr/bin/python3"  # the user cannot read root's interpreter; Debian's own works for everyone


@dataclass
class RootlessUser:
    name: str
    home: Path
    airpods: Path
    model: Path

    def env(self, **extra: str) -> list[str]:
        """A login-like environment without XDG_RUNTIME_DIR (as `su - USER` gives here)."""
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "NO_COLOR": "1",
                "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **extra}
        return ["env", "-i", *[f"{k}={v}" for k, v in base.items()]]

    def run(self, *argv: str, timeout: float = 300, check: bool = False,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", self.name, "--", *self.env(**(extra_env or {})), *argv],
                              capture_output=True, text=True, timeout=timeout, check=check, cwd="/")

    def podman(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run("podman", *args, check=check, timeout=timeout)

    def give_image(self, image: str, timeout: float = 900) -> None:
        """root's locally built image into the user's own storage (podman save / podman load), unless
        the user has that very image already (a rebuilt one is given again)."""
        ours = podman("image", "inspect", "--format", "{{.Id}}", image, check=False).stdout.strip()
        theirs = self.podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        if ours and ours == theirs:
            return
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "image.tar"
            podman("save", "--quiet", "-o", str(archive), image, timeout=timeout)
            os.chmod(tmp, 0o755)
            os.chmod(archive, 0o644)
            loaded = self.podman("load", "--quiet", "-i", str(archive), timeout=timeout)
            assert loaded.returncode == 0, loaded.stderr


def _as_user(user: str, *argv: str, timeout: float = 600) -> None:
    out = subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, timeout=timeout,
                         check=False, cwd="/")
    if out.returncode != 0:
        pytest.fail(f"setting up the rootless user failed: {' '.join(argv)}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")


def _install_airpods(user: str, home: Path) -> Path:
    """airpods from this checkout, in a venv of the user's own (deps once, our code every run)."""
    venv = home / "airpods-venv"
    if not (venv / "bin" / "python").exists():
        _as_user(user, PYTHON, "-m", "venv", str(venv))
    src = Path(tempfile.mkdtemp(prefix="airpods-src-"))
    shutil.copytree(ROOT / "airpods", src / "airpods", ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, src / item)
    subprocess.run(["chown", "-R", f"{user}:{user}", str(src)], check=True)
    try:
        _as_user(user, str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(src))
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return venv / "bin" / "airpods"


@pytest.fixture(scope="session")
def rootless_user(smollm2_path) -> RootlessUser:
    need(os.geteuid() == 0, "the rootless tests create an unprivileged user, which needs root",
         "run scripts/test.sh as root (it uses sudo when it is not)")
    need(shutil.which("runuser") is not None, "runuser (util-linux) is missing", "apt-get install util-linux")
    need(podman("image", "exists", LLAMA_IMAGE, check=False).returncode == 0, f"{LLAMA_IMAGE} is not built",
         "run scripts/build-llamacpp-image.sh")
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        entry = pwd.getpwnam(USER)
    tun = Path("/dev/net/tun")
    if tun.exists() and stat.S_IMODE(tun.stat().st_mode) & 0o006 != 0o006:
        os.chmod(tun, 0o666)  # what udev gives it on a standard install
    home = Path(entry.pw_dir)
    airpods = _install_airpods(USER, home)
    user = RootlessUser(USER, home, airpods, Path("/tmp") / f"{USER}-models" / smollm2_path.name)
    user.give_image(LLAMA_IMAGE)
    user.model.parent.mkdir(exist_ok=True)
    os.chmod(user.model.parent, 0o755)
    if not user.model.exists() or user.model.stat().st_size != smollm2_path.stat().st_size:
        shutil.copy(smollm2_path, user.model)
    os.chmod(user.model, 0o644)
    return user


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "get-smollm2.sh")], capture_output=True, text=True,
                         check=False)
    path = Path(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None
    need(path is not None and path.is_file(), "SmolLM2 model not available", "run scripts/get-smollm2.sh")
    return path


@pytest.fixture
def rl(rootless_user):
    """A unique id for the test's resources in the user's Podman, cleaned up by label after."""
    run_id = uuid.uuid4().hex[:8]
    yield run_id
    label = f"label={TEST_LABEL}={run_id}"
    pods = rootless_user.podman("pod", "ps", "-q", "--filter", label).stdout.split()
    if pods:
        rootless_user.podman("pod", "rm", "-f", "-t", "0", *pods)
    vols = rootless_user.podman("volume", "ls", "-q", "--filter", label).stdout.split()
    vols.append(f"airpods_rl{run_id}_models")
    rootless_user.podman("volume", "rm", "-f", *vols)
    rootless_user.podman("network", "rm", "-f", f"airpods-rl{run_id}")

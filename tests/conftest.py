"""Test isolation: every test gets its own config/data dirs, no colour, no inherited airpods env."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub_standin import serve

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("AIRPODS_") and key != "AIRPODS_BUILD_CACHE":
            monkeypatch.delenv(key)
    # Built images' inputs (llama-server binary, test model) stay in the real cache.
    real_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    monkeypatch.setenv("AIRPODS_BUILD_CACHE", os.environ.get("AIRPODS_BUILD_CACHE") or f"{real_cache}/airpods")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")
    # GPU probes look at an empty device root and CDI dir unless a test says otherwise.
    (tmp_path / "dev").mkdir()
    (tmp_path / "cdi").mkdir()
    monkeypatch.setenv("AIRPODS_DEV_ROOT", str(tmp_path / "dev"))
    monkeypatch.setenv("AIRPODS_CDI_DIRS", str(tmp_path / "cdi"))
    from airpods.probes.gpu import detect

    detect.cache_clear()
    return tmp_path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str) -> Result:
    """Run `airpods ARGS` in-process through main(), as a user would (exit code, stdout, stderr)."""
    from airpods.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a user config file and return its path."""
    counter = [0]

    def write(text: str) -> str:
        counter[0] += 1
        path = tmp_path / f"config-{counter[0]}.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def hub(monkeypatch):
    stand_in, server = serve(monkeypatch, {})
    yield stand_in
    server.shutdown()

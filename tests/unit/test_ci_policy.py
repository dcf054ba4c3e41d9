"""With CI set, a test that needs Podman fails when Podman is missing; without CI it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/integration/test_lifecycle.py::test_unknown_service_is_a_usage_error"


def run(ci: bool, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CONTAINER_HOST")}
    env["PATH"] = str(tmp_path)  # no podman here
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)


def test_podman_tests_fail_in_ci_without_podman(tmp_path):
    result = run(True, tmp_path)
    assert result.returncode == 1, result.stdout
    assert "CI requires it: Podman is not installed" in result.stdout


def test_podman_tests_skip_outside_ci_without_podman(tmp_path):
    result = run(False, tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout

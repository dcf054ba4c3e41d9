from __future__ import annotations

import pytest

from tests.podman_env import PodmanRun, build_busybox_image, require_podman


@pytest.fixture(scope="session")
def busybox_image() -> str:
    require_podman()
    return build_busybox_image()


@pytest.fixture
def prun(busybox_image):
    run = PodmanRun()
    yield run
    run.cleanup()

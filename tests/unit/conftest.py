"""The in-memory runtime behind the CLI: commands run as a user types them, against the fake."""

from __future__ import annotations

import pytest

from airpods.runtime.fake import FakeRuntime


@pytest.fixture
def fake(monkeypatch, tmp_path) -> FakeRuntime:
    runtime = FakeRuntime(volume_root=tmp_path / "volumes")
    monkeypatch.setattr("airpods.runtime.connect.connect", lambda **_: runtime)
    return runtime

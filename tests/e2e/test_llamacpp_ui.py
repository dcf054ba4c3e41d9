"""The `llamacpp-ui` service: llama.cpp's own web UI, loaded in headless Chromium."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.builders import chromium
from tests.podman_env import LLAMA_IMAGE, free_port

pytestmark = [pytest.mark.podman, pytest.mark.llamacpp, pytest.mark.browser]


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def wait_text(driver, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not on the page; it shows: {text[:300]!r}")


def test_llamacpp_ui_page_loads_in_chromium(prun, cli, write_config, smollm2, browser, tmp_path):
    from selenium.webdriver.common.by import By

    port = free_port()
    config = prun.header() + f"""
[services.llamacpp-ui]
enabled = true
images = {{ cpu = "{LLAMA_IMAGE}" }}
pod = "llamacpp-ui-{prun.id}"
container = "llamacpp-ui-{prun.id}-0"
ports = [{{ host = {port}, container = 8080 }}]
"""
    path = write_config(config)
    assert cli("--config", path, "models", "import", str(smollm2)).code == 0
    rendered = json.loads(cli("--config", path, "config", "render", "llamacpp-ui", "--json").out)
    assert "--no-webui" not in rendered["command"] and rendered["health"]["path"] == "/"
    started = cli("--config", path, "start", "llamacpp-ui")
    assert started.code == 0, started.text

    # With its (default) API key the UI is served but asks for the key before it shows anything.
    browser.get(f"http://127.0.0.1:{port}/")
    assert "API Key" in wait_text(browser, "API Key")
    assert "llama-ui" in browser.title  # "llama-ui", or "Error 401 - llama-ui" while it asks
    assert "SmolLM2" not in browser.find_element(By.TAG_NAME, "body").text

    # Without a key (a changed config: the container is recreated) the chat UI comes up, with the
    # model chip fed by the running server.
    path = write_config(config + 'api_key = ""\n')
    restarted = cli("--config", path, "start", "llamacpp-ui")
    assert restarted.code == 0 and "recreat" in restarted.err, restarted.text
    browser.get(f"http://127.0.0.1:{port}/")
    text = wait_text(browser, "SmolLM2")  # after a moment of "Loading model"
    assert "Type a message" in text and browser.title == "llama-ui"  # no error title now
    shot = Path(tmp_path) / "llamacpp-ui.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

"""Defects users hit (issue 29), each with a test that fails on the code before its fix."""

from __future__ import annotations

import json

import pytest


def render(cli, path: str, name: str) -> dict:
    result = cli("--config", path, "config", "render", name, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_a_users_image_replaces_a_default_services_images(cli, write_config):
    path = write_config('[services.llamacpp]\nimage = "localhost/mine/llama:server"\n')
    assert cli("--config", path, "config", "validate").code == 0
    assert render(cli, path, "llamacpp")["image"] == "localhost/mine/llama:server"


def test_a_users_images_replace_a_default_services_image(cli, write_config):
    path = write_config('[services.gateway]\nenabled = true\nimages = { cpu = "localhost/mine/caddy:2" }\n')
    assert cli("--config", path, "config", "validate").code == 0, cli("--config", path, "config", "validate").text
    assert render(cli, path, "gateway")["image"] == "localhost/mine/caddy:2"


@pytest.mark.parametrize("kind,image", [("llamacpp", "ghcr.io/ggml-org/llama.cpp:server"),
                                        ("ollama", "docker.io/ollama/ollama:latest"),
                                        ("open-webui", "ghcr.io/open-webui/open-webui:main")])
def test_a_new_service_of_a_known_kind_gets_its_kinds_images(cli, write_config, kind, image):
    extra = 'default_model = "m.gguf"\n' if kind == "llamacpp" else ""
    path = write_config(f'[services.mine]\nkind = "{kind}"\nports = [{{ container = 8080 }}]\n{extra}')
    result = cli("--config", path, "config", "validate")
    assert result.code == 0, result.text
    assert render(cli, path, "mine")["image"] == image


def test_the_merge_gives_a_gateway_of_another_name_the_gateways_image():
    from airpods.config.loader import DEFAULTS, merge_services, read_toml

    defaults = read_toml(DEFAULTS).data["services"]
    merged = merge_services(defaults, {"door": {"kind": "gateway"}, "gateway": {"images": {"cpu": "localhost/c:2"}}})
    assert merged["door"]["image"] == "docker.io/library/caddy:2" and "images" not in merged["door"]
    assert merged["gateway"]["images"] == {"cpu": "localhost/c:2"} and "image" not in merged["gateway"]


def test_the_oom_file_is_gone():
    from pathlib import Path

    assert not (Path(__file__).resolve().parents[2] / "oom").exists()


SAME_NAMES = """
[runtime]
{runtime}
[services.open-webui]
enabled = false
[services.llamacpp]
enabled = false
[services.web]
image = "localhost/test/web:1"
ports = [{{ host = {port}, container = 8080 }}]
"""


def test_a_second_project_with_the_same_service_names_runs_beside_the_first(fake, cli, write_config, isolated):
    from tests.podman_env import free_port

    fake.images.add("localhost/test/web:1")
    mine = isolated / "config" / "airpods" / "config.toml"  # the user's own file: the default project
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(SAME_NAMES.format(runtime="", port=free_port()))
    assert cli("start", "web", "--no-wait").code == 0
    before = fake.containers["web-0"]
    lab = write_config(SAME_NAMES.format(runtime='project = "lab"', port=free_port()))
    started = cli("--config", lab, "start", "web", "--no-wait")
    assert started.code == 0, started.text
    assert set(fake.pods) == {"web", "lab-web"} and {"web-0", "lab-web-0"} <= set(fake.containers)
    assert fake.containers["web-0"] is before  # the user's own stack: not touched, plain names kept
    assert fake.specs["lab-web-0"].network == "airpods-lab" and fake.specs["web-0"].network == "airpods"
    [row] = json.loads(cli("--config", lab, "status", "--json").out)
    assert row["pod"] == "lab-web" and row["container"] == "lab-web-0" and row["state"] == "running"
    assert "lab-web / lab-web-0" in cli("--config", lab, "status").text
    assert cli("--config", lab, "stop", "--remove").code == 0
    assert set(fake.pods) == {"web"} and fake.containers["web-0"].running


def test_a_projects_container_under_its_former_name_is_replaced_by_the_prefixed_one(fake, cli, write_config):
    from tests.podman_env import free_port

    fake.images.add("localhost/test/web:1")
    port = free_port()
    old = write_config(SAME_NAMES.format(runtime='project = "lab"\nname_prefix = ""', port=port))
    assert cli("--config", old, "start", "web", "--no-wait").code == 0
    assert "web-0" in fake.containers
    new = write_config(SAME_NAMES.format(runtime='project = "lab"', port=port))
    result = cli("--config", new, "start", "web", "--no-wait")
    assert result.code == 0, result.text
    assert set(fake.pods) == {"lab-web"} and set(fake.containers) == {"lab-web-0"}  # the same port, taken over

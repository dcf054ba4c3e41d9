"""How a user's file merges over the default config: a user's image or images replace the default
service's, a new service of a known kind gets its kind's images."""

from __future__ import annotations

import pytest

from tests.unit.builders import render


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

import os
import stat

import tomllib


def test_config_path_names_both_files(cli, isolated):
    result = cli("config", "path")
    assert result.code == 0
    assert "default.toml" in result.out and str(isolated / "config" / "airpods" / "config.toml") in result.out


def test_config_show_prints_the_merged_toml(cli, write_config):
    path = write_config('[services.llamacpp]\ndefault_model = "mine.gguf"\n')
    result = cli("--config", path, "config", "show")
    data = tomllib.loads(result.out)
    assert data["services"]["llamacpp"]["default_model"] == "mine.gguf"
    assert data["services"]["llamacpp"]["command_args"]["no_webui"] is True  # from the defaults


def test_config_init_writes_a_valid_file_and_refuses_to_overwrite(cli, isolated):
    assert cli("config", "init").code == 0
    path = isolated / "config" / "airpods" / "config.toml"
    assert "# airpods user configuration" in path.read_text()
    assert cli("config", "validate").code == 0
    again = cli("config", "init")
    assert again.code == 2 and "--force" in again.err
    assert cli("config", "init", "--force").code == 0


def test_missing_explicit_config_is_a_usage_error(cli, isolated):
    result = cli("--config", str(isolated / "nope.toml"), "config", "validate")
    assert result.code == 2 and "does not exist" in result.err and "Traceback" not in result.text


def test_open_webui_secret_key_is_stored_0600(cli, isolated):
    assert cli("config", "render", "open-webui", "--show-secrets").code == 0
    key = isolated / "data" / "airpods" / "secrets" / "open-webui-secret-key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key.parent).st_mode) == 0o700


def test_example_layouts_validate(cli):
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "configs" / "examples").glob("*.toml"))
    assert {p.name for p in examples} >= {"hybrid.toml", "multi-llama.toml"}
    for path in examples:
        result = cli("--config", str(path), "config", "validate")
        assert result.code == 0, (path, result.text)

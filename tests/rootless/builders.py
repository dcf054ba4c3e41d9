"""What the rootless tests build the same way: a config in the test user's home, a llama.cpp
service on the image loaded there."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.builders import MODEL
from tests.podman_env import LLAMA_IMAGE, TEST_LABEL, toml_value


def write_config(user, run_id: str, body: str, suffix: str = "") -> Path:
    path = Path("/tmp") / f"airpods-rl-{run_id}{suffix}.toml"
    path.write_text(f"""
[runtime]
name_prefix = ""   # the test names its objects with the run id
network = "airpods-rl{run_id}"
models_volume = "airpods_rl{run_id}_models"
stop_timeout = 3
labels = {{ "{TEST_LABEL}" = "{run_id}" }}

[services.llamacpp]
enabled = false
[services.open-webui]
enabled = false
""" + body)
    os.chmod(path, 0o644)
    return path


def llama(name: str, port: int, health: dict[str, object] | None = None, alias: str | None = None,
          **keys: object) -> str:
    """A llama.cpp service on the image loaded for the test user (`health`, `keys`: as llama_table;
    `alias`: the model id it answers to, else the file's name)."""
    more = "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
    return f"""
[services.{name}]
kind = "llamacpp"
images = {{ cpu = "{LLAMA_IMAGE}" }}
network_aliases = ["{name}"]
ports = [{{ host = {port}, container = 8080 }}]
health = {toml_value({"path": "/health", "timeout": 120, **(health or {})})}
default_model = "{MODEL}"
{more}[services.{name}.command_args]
model = "/models/{{{{ default_model }}}}"
alias = "{alias or "{{ default_model | replace('.gguf', '') }}"}"
ctx_size = 1024
no_webui = true
"""

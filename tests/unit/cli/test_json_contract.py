"""The --json contract: each command's keys pinned here (a rename or a dropped key is a change to
users' scripts, made on purpose in both places), the check that every printed JSON keeps it (the
autouse fixture in tests/unit/conftest.py), and --help listing the same keys."""

from __future__ import annotations

import json

import pytest

from airpods.cli import contract
from tests.podman_env import free_port

PINNED = {
    "STATUS": "service state health url image pod container model kind project uptime_seconds exit_code restarts "
              "last_failure orphaned outdated plan_differs wired_to router cpuset cpuset_enforced threads cpu_plan "
              "memory_limit memory_limit_enforced gpus gpu_layers gpu_plan",
    "STATUS_BY_LABELS": "service state health url image pod container model project restarts last_failure",
    "RENDER": "service kind image variant pod container network aliases ports volumes env devices entrypoint command "
              "health url security_opt security resources cpuset threads cpu_plan restart_policy depends_on "
              "default_model wired_to gpu gpus gpu_layers gpu_plan vram spec_hash config_hash project mode router "
              "router_preset gateway config_files",
    "DOCTOR": "podman socket network_backend containers probes gpus cpu services health gateway speed",
    "TOP": "service model kind state container why cpu_percent memory_bytes vram",
    "MODELS_LIST": "file size sha256 source architecture quantization parts vision mmproj",
    "MODELS_PS": "service id aliases state file why exit_code",
    "MODELS_FIT": "model service ctx parallel weights kv_cache compute overhead total available limit others fits "
                  "max_ctx gpus",
    "PULL_LIST": "name quant files size total available limit fits max_ctx",
    "MODELS_SEARCH": "repo downloads likes vision split error quants best run prediction_basis estimates_here",
    "KEYS_LIST": "name created last_used",
    "BENCH": "at model model_id service quant device prompt_tokens gen_tokens parallel repeat prompt_tokens_per_s "
             "generation_tokens_per_s first_token_ms memory_bytes estimate_bytes predicted_generation_tokens_per_s "
             "predicted_prompt_tokens_per_s prediction_basis flags image image_digest cpu gpus airpods_version "
             "weights kv_bytes",
    "HOSTS_LIST": "name url reachable latency_ms models tls_expires error",
    "KEYS_USAGE": "person model service requests errors seconds prompt_tokens completion_tokens unmatched last",
}


def test_every_shape_is_pinned():
    shapes = {n: v for n, v in vars(contract).items() if isinstance(v, contract.Shape)}
    assert {n: " ".join(s.keys) for n, s in shapes.items()} == PINNED


def test_the_check_finds_a_missing_and_an_unknown_key():
    shape = contract.Shape(("a", "b"), ("c",))
    assert shape.problems([{"a": 1, "b": 2, "c": 3}]) == []
    assert shape.problems([{"a": 1, "z": 0}]) == ["missing 'b'", "not in the contract: 'z'"]
    assert contract.Shape(("a",), rows=False).problems([]) == ["expected an object, got list"]


@pytest.mark.parametrize(("words", "shape"), [(("status",), contract.STATUS), (("top",), contract.TOP),
                                              (("doctor",), contract.DOCTOR), (("models", "ps"), contract.MODELS_PS),
                                              (("keys", "usage"), contract.KEYS_USAGE)])
def test_help_lists_the_contracts_keys(cli, words, shape):
    text = " ".join(cli(*words, "--help").out.split())
    assert all(k in text for k in shape.keys)


WEB = """
[services.web]
image = "localhost/test/web:1"
ports = [{{ host = {port}, container = 80 }}]
"""


def test_status_render_doctor_and_top_print_their_shapes(fake, cli, write_config):
    fake.images.add("localhost/test/web:1")
    path = write_config(WEB.format(port=free_port()))
    assert cli("--config", path, "start", "web", "--no-wait").code == 0
    for words, shape in ((("status", "--json"), contract.STATUS), (("config", "render", "web", "--json"),
                         contract.RENDER), (("doctor", "--json"), contract.DOCTOR),
                         (("top", "--once", "--json", "--interval", "0.2"), contract.TOP)):
        result = cli("--config", path, *words)
        assert result.code == 0, result.text
        assert shape.problems(json.loads(result.out)) == [], words


def test_doctor_with_a_config_that_does_not_load_still_reports(fake, cli, write_config):
    result = cli("--config", write_config("[services.x]\nkind = 3\n"), "doctor", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert "services.x.kind" in data["config_error"] or "configuration is invalid" in data["config_error"]
    assert contract.DOCTOR.problems(data) == []

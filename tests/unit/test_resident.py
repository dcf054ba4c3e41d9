"""A router's resident set from its models' memory estimates (max_loaded = "auto"): RAM only,
RAM + GPUs, pinned models first, a model that never fits said with the numbers; and the plan as
`config render` shows it, from real GGUF headers in the volume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airpods.plan.resident import GIB, ModelCost, PinsDoNotFit, plan
from tests.gguf_builder import llama_like, write_gguf
from tests.unit.builders import render

MIB = 1 << 20
F16 = 1


def test_ram_only_admits_the_largest_that_fit_together():
    costs = [ModelCost("a", 4 * GIB), ModelCost("b", 3 * GIB), ModelCost("c", 2 * GIB), ModelCost("d", 1 * GIB)]
    assert plan(costs, 7 * GIB).max_loaded == 2  # 4 + 3 fit; 4 + 3 + 2 does not
    assert plan(costs, 9 * GIB).max_loaded == 3
    assert plan(costs, 10 * GIB).max_loaded == 4
    assert plan(costs, 3 * GIB).max_loaded == 1  # a and b never fit: left out, the others one at a time
    assert [i for i, _ in plan(costs, 3 * GIB).left_out] == ["a"]
    assert plan(costs, None).max_loaded == 4  # no budget: all of them


def test_pinned_models_are_counted_first_and_leave_the_rest_their_room():
    costs = [ModelCost("pin", 5 * GIB, pinned=True), ModelCost("big", 9 * GIB), ModelCost("x", 2 * GIB),
             ModelCost("y", 2 * GIB), ModelCost("z", 2 * GIB)]
    rp = plan(costs, 10 * GIB)
    assert rp.max_loaded == 3  # pin + two of x/y/z (5 + 2 + 2 <= 10; + 2 more would not)
    [(model, why)] = rp.left_out
    assert model == "big" and why == "would exceed RAM: 14.0 of 10.0 GiB with the pinned models loaded"
    assert "1 pinned" in rp.why
    with pytest.raises(PinsDoNotFit, match="pin fewer"):
        plan([ModelCost("p1", 6 * GIB, pinned=True), ModelCost("p2", 6 * GIB, pinned=True)], 10 * GIB)


def test_ram_and_gpus_both_bound_it():
    costs = [ModelCost("a", 200 * MIB, 6 * GIB), ModelCost("b", 200 * MIB, 5 * GIB), ModelCost("c", 200 * MIB, 4 * GIB)]
    assert plan(costs, 64 * GIB, 12 * GIB).max_loaded == 2  # VRAM: 6 + 5 fit in 12, + 4 does not
    assert plan(costs, 64 * GIB, 16 * GIB).max_loaded == 3
    assert plan(costs, 450 * MIB, 16 * GIB).max_loaded == 2  # RAM binds: 3 x 200 MiB > 450 MiB
    rp = plan(costs, 64 * GIB, 5.5 * GIB)
    assert rp.max_loaded == 1 and dict(rp.left_out) == {"a": "would exceed VRAM: 6.0 of 5.5 GiB"}


ROUTER = """
[runtime]
memory_budget = "{budget}"
[services.llamacpp]
mode = "router"
default_model = "one"
[services.llamacpp.command_args]
ctx_size = 2048
[services.llamacpp.models.one]
file = "m1.gguf"
pin = true
[services.llamacpp.models.two]
file = "m2.gguf"
ttl = 5
[services.llamacpp.models.three]
file = "m3.gguf"
ttl = 0
"""


def test_render_sets_models_max_from_the_headers_in_the_volume(cli, write_config, isolated):
    from airpods.models.gguf_header import read_model
    from airpods.plan.memory import estimate, facts_from_header, shape_from_argv

    volume = Path(os.environ["AIRPODS_VOLUMES_ROOT"]) / "airpods_llamacpp_models" / "_data"
    volume.mkdir(parents=True)
    kv = llama_like("llama", 30, 576, 9, 3, 1536, 49152, 8192)
    for name in ("m1.gguf", "m2.gguf", "m3.gguf"):
        write_gguf(volume / name, kv, [("w", F16, [576, 80_000])])
    one = render(cli, write_config(ROUTER.format(budget="100g")))
    cmd = one["command"]
    assert cmd[cmd.index("--models-max") + 1] == "3" and one["router"]["max_loaded_auto"] is True
    assert "3 at once (1 pinned" in one["router"]["max_loaded_why"]
    ini = one["router_preset"]
    first, second, third = ini.split("\n[")[2:]
    assert "load-on-startup = true" in first and "sleep-idle-seconds = -1" in first  # pinned: never sleeps
    assert "sleep-idle-seconds = 5" in second and "sleep-idle-seconds = -1" in third  # ttl 0: never
    header = read_model(volume / "m1.gguf")
    each = estimate(facts_from_header(header.kv, header.tensor_bytes), shape_from_argv(["--ctx-size", "2048"])).total
    tight = render(cli, write_config(ROUTER.format(budget=f"{int(each * 2.5) >> 20}m")))  # room for two
    assert tight["command"][tight["command"].index("--models-max") + 1] == "2", tight["router"]["max_loaded_why"]
    alone = render(cli, write_config(ROUTER.format(budget=f"{int(each * 1.5) >> 20}m")))  # the pinned one only
    assert alone["command"][alone["command"].index("--models-max") + 1] == "1"
    assert set(alone["router"]["left_out"]) == {"two", "three"}
    assert "would exceed RAM" in alone["router"]["left_out"]["two"]

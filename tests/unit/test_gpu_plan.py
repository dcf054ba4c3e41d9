"""The GPU plan on fake inventories (pure): whole, split and partial offload, sharing, pins."""

from __future__ import annotations

import pytest

from airpods.plan.gpu_plan import GPU_OVERHEAD, GpuClaim, GpuPlanError, ModelCost, plan_gpus
from airpods.probes.gpu import Gpu

GIB = 1 << 30
MIB = 1 << 20


def gpus(*sizes_gib: float) -> tuple[Gpu, ...]:
    return tuple(Gpu(i, f"GPU-{i:04d}", "Fake GPU", int(s * GIB), int(s * GIB)) for i, s in enumerate(sizes_gib))


def model(total_gib: float, n_layer: int = 40, compute_mib: int = 256) -> ModelCost:
    """A model whose layers and head add up to total_gib (the head is one layer's worth)."""
    each = int(total_gib * GIB / (n_layer + 1))
    return ModelCost(tuple([each] * n_layer), each, 100 * MIB, compute_mib * MIB)


def test_a_model_larger_than_the_gpu_is_partly_offloaded_with_the_most_layers_that_fit():
    cost = model(12)
    [p] = plan_gpus(gpus(8), [GpuClaim("chat", cost)]).values()
    room = 8 * GIB - cost.compute - GPU_OVERHEAD
    assert p.gpus == (0,) and 0 < p.layers < cost.n_layer
    assert cost.on_gpu(p.layers) <= room < cost.on_gpu(p.layers + 1)  # the largest count that fits
    assert p.ram == cost.ram(p.layers) and p.ram > 4 * GIB  # the rest counted in RAM
    assert dict(p.vram)[0] <= 8 * GIB and p.argv_layers == p.layers
    assert p.describe() == f"GPU 0 · {p.layers}/40 layers"


def test_two_models_on_two_gpus_get_one_gpu_each():
    plan = plan_gpus(gpus(24, 24), [GpuClaim("a", model(14)), GpuClaim("b", model(14))])
    assert {plan["a"].gpus, plan["b"].gpus} == {(0,), (1,)}
    assert plan["a"].layers == plan["a"].n_layer and plan["a"].argv_layers == 41  # every layer and the head


def test_a_model_no_gpu_holds_spans_both_in_proportion():
    plan = plan_gpus(gpus(24, 24), [GpuClaim("big", model(40))])
    p = plan["big"]
    assert p.gpus == (0, 1) and p.layers == p.n_layer and p.split == (0.5, 0.5)
    assert all(v <= 24 * GIB for _, v in p.vram) and p.ram == 100 * MIB
    uneven = plan_gpus(gpus(24, 16), [GpuClaim("big", model(34))])["big"]
    assert uneven.gpus == (0, 1) and uneven.split[0] > uneven.split[1]


def test_small_services_share_one_gpu_each_with_its_share():
    plan = plan_gpus(gpus(24), [GpuClaim(n, model(4)) for n in ("a", "b", "c")])
    assert all(p.gpus == (0,) and p.layers == p.n_layer for p in plan.values())
    assert sum(v for p in plan.values() for _, v in p.vram) <= 24 * GIB


def test_the_second_service_gets_what_the_first_left():
    plan = plan_gpus(gpus(24), [GpuClaim("big", model(20)), GpuClaim("small", model(8))])
    assert plan["big"].layers == plan["big"].n_layer
    small = plan["small"]
    assert 0 < small.layers < small.n_layer  # the first cannot take what the second needs
    assert sum(v for p in plan.values() for _, v in p.vram) <= 24 * GIB


def test_largest_first_and_best_fit():
    plan = plan_gpus(gpus(24, 12), [GpuClaim("small", model(6)), GpuClaim("large", model(20))])
    assert plan["large"].gpus == (0,) and plan["small"].gpus == (1,)


def test_a_pin_is_kept_and_a_pin_to_a_missing_gpu_is_an_error():
    plan = plan_gpus(gpus(24, 24), [GpuClaim("a", model(4), pins=("1",)), GpuClaim("b", model(4), pins=("GPU-0000",))])
    assert plan["a"].gpus == (1,) and plan["b"].gpus == (0,) and "pinned" in plan["a"].reason
    with pytest.raises(GpuPlanError) as err:
        plan_gpus(gpus(24), [GpuClaim("a", model(4), pins=("3",))])
    assert "services.a.gpu.devices: no GPU '3'" in str(err.value) and err.value.service == "a"


def test_user_flags_and_unreadable_models_are_not_planned():
    plan = plan_gpus(gpus(24, 24), [GpuClaim("mine", model(4), user="services.mine.command_args.n_gpu_layers"),
                                    GpuClaim("unknown", None)])
    assert plan["mine"].layers is None and plan["mine"].gpus == (0, 1) and "checked, not planned" in plan["mine"].reason
    assert plan["unknown"].layers is None and plan["unknown"].argv_layers is None


def test_eight_mixed_gpus():
    inventory = gpus(80, 80, 48, 48, 24, 24, 16, 16)
    claims = [GpuClaim(f"m{i}", model(size)) for i, size in enumerate((70, 40, 20, 12, 8, 150))]
    plan = plan_gpus(inventory, claims)
    used = {}
    for p in plan.values():
        for i, v in p.vram:
            used[i] = used.get(i, 0) + v
    assert all(used[i] <= inventory[i].total for i in used)
    assert len(plan["m5"].gpus) >= 2 and plan["m5"].layers == plan["m5"].n_layer  # 150 GiB spans GPUs


def test_a_vram_share_holds_a_service_below_what_the_gpu_could_give():
    cost = model(6)
    p = plan_gpus(gpus(80), [GpuClaim("held", cost, cap=4 * GIB)])["held"]
    assert 0 < p.layers < cost.n_layer and dict(p.vram)[0] <= 4 * GIB and p.ram > 2 * GIB
    assert "partial offload" in p.reason


def test_the_plan_counts_what_others_hold_but_not_what_this_configs_services_hold():
    from airpods.plan.gpu_plan import available

    desk = (Gpu(0, "GPU-0000", "Desk", 8 * GIB, 6 * GIB),)  # 2 GiB held by something
    assert available(desk) == {0: 6 * GIB}  # nothing known to be airpods': all of it is others'
    assert available(desk, {0: GIB}) == {0: 7 * GIB}  # 1 GiB of it is this config's running service
    assert available(desk, {0: 3 * GIB}) == {0: 8 * GIB}  # never more than the card
    cost = model(12)
    [p] = plan_gpus(desk, [GpuClaim("chat", cost)]).values()
    assert dict(p.vram)[0] <= 6 * GIB < dict(p.vram)[0] + cost.layers[0]


def test_the_ram_side_of_a_partial_offload_has_its_kv_cache_and_a_compute_buffer():
    each_kv = 10 * MIB
    cost = ModelCost(tuple([100 * MIB + each_kv] * 10), 50 * MIB, 20 * MIB, 64 * MIB, tuple([each_kv] * 10))
    weights, kv, compute = cost.ram_parts(6)  # 4 layers on the CPU
    assert kv == 4 * each_kv and compute == 64 * MIB
    assert weights == 20 * MIB + 4 * 100 * MIB + 50 * MIB and cost.ram(6) == weights + kv + compute
    assert cost.ram_parts(10) == (20 * MIB, 0, 0)  # all on the GPU: the embeddings alone stay

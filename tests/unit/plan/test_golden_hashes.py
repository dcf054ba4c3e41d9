"""Golden hashes: the spec_hash and config_hash of every service in fixed stacks (the default config,
a router, gateway + Open WebUI, Prometheus, a GPU plan on a fake inventory), pinned. A hash that
moves recreates that service's running container on upgrade: change one here only on purpose, with
docs/upgrading.md saying which services are recreated and why. Written before the seams redesign
(issue 36) and unchanged by it; issue 37 added the hub (a new service: the others did not move). In
the hub stack alone, later in issue 37, the hub (its request log for `top`), Open WebUI (wired to the
hub) and the gateway (wired beside it) moved on purpose: docs/upgrading.md."""

from __future__ import annotations

import pytest

from tests.unit.plan.golden import STACKS, hashes, resolved

GOLDEN = {'default': {'llamacpp': ('776fe01d5c108887', 'aef626599e99663f'),
             'llamacpp-ui': ('00fefb668be24cef', 'ead62c20e0a0f6a4'),
             'ollama': ('8f519bc2166ec2ef', 'eb3114dcdd16b49b'),
             'open-webui': ('c2b01317546193d4', '32502892f4bfddee'),
             'gateway': ('078433b8f5397581', 'a04da6ebb44b3ced'),
             'prometheus': ('f58d4d19f16d900c', 'b2ec9aa9cb298c13'),
             'hub': ('b7fd9677f9d34b68', 'ec08fa5aced5971a')},
 'router': {'llamacpp': ('8c543f4e1059c90f', '6a775c8f9b2106de'),
            'llamacpp-ui': ('ee6f40d9c09bab1d', 'ca6b4003c8c2b2e3'),
            'ollama': ('089bd73c2793bb3c', '1e7c58238b7ee8c7'),
            'open-webui': ('09e8ac3986b380f3', '5660e8ba2dd94752'),
            'gateway': ('e85c96008884b1e8', '0398479b1f5c2ed6'),
            'prometheus': ('1765c16413191242', '69066406528a599c'),
            'hub': ('61d8122352d827f0', 'd9b250db7143c41a')},
 'gateway': {'llamacpp': ('ffecaae903e6f007', '752e103b89ae785a'),
             'llamacpp-ui': ('ad75e5a6c4bcd6fb', '0b4df6a6ee0a6169'),
             'ollama': ('c69cb48d2168e1d7', '3c8c93252f260f75'),
             'open-webui': ('b99b655bd047e759', '907a03c659865dd5'),
             'gateway': ('ae6bf36edfe98e6d', 'dfd9df901d28c62e'),
             'prometheus': ('e7882da3bc7936de', '22da35785d8c51d6'),
             'hub': ('cfa07a93b3bea8af', 'b75993af93f63542')},
 'prometheus': {'llamacpp': ('992a3a6d75f36b94', '72a8912ec666de8f'),
                'llamacpp-ui': ('a074271957ec5f74', '17a7030f041b7dac'),
                'ollama': ('9643834885630693', 'ccc65865a8640b79'),
                'open-webui': ('3ee27a23dbc3c33e', '5c5a24ebb66e1e98'),
                'gateway': ('9bb306c207965da1', '86e02df12095fd19'),
                'prometheus': ('c3bccafc55a46e1b', '86184fe6154f64e5'),
                'hub': ('f83476144e0fb40f', 'b6a18f53c349eb24')},
 'gpu': {'llamacpp': ('4d40ea0b38d5e45d', '9cc30e7343e8019f'),
         'llamacpp-ui': ('1b83a969d26b7ab1', '448b3c0e33795b96'),
         'ollama': ('730faa0274ac85ed', '94c7e15849caf5f8'),
         'open-webui': ('4bc72fa73f3d8139', '9f128386a957ebd6'),
         'gateway': ('1b40f5690f354483', 'be6c32cba1641565'),
         'prometheus': ('16301547faa77e77', '2b48e3a88ccc820c'),
         'hub': ('0e7073cfb6030ec5', 'b501c0cb1cae3b33')},
 'hub': {'llamacpp': ('0ed43e418dd13fb9', '1ce0efd13de3f651'),
         'llamacpp-ui': ('07098280b77065ae', '22f461572808212b'),
         'ollama': ('a3cc0e1ac7edc7e7', '1bec8967409c17c6'),
         'open-webui': ('afbabf92525d33af', '852ae12cca63842c'),
         'gateway': ('220e7241ff12c82d', '233e55d65e71d7d1'),
         'prometheus': ('cf55967c6b3c60ed', '5e44b19c2214c7ce'),
         'hub': ('5fc7399e4d86c5e7', '38f8ef8d33d628c0')}}


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_hashes_of_a_fixed_stack_do_not_move(stack, tmp_path):
    assert hashes(stack, tmp_path) == GOLDEN[stack]


def test_the_golden_stacks_cover_what_they_say(tmp_path):
    """Each stack exercises what it is named for, so a pinned hash covers that part of the spec."""
    router = resolved("router", tmp_path)["llamacpp"]
    assert router.router is not None and router.router_preset and "io.airpods.pins" in router.labels
    gateway = resolved("gateway", tmp_path)
    assert gateway["gateway"].enabled and gateway["gateway"].gateway_routes and gateway["open-webui"].enabled
    assert resolved("prometheus", tmp_path)["prometheus"].enabled
    gpu = resolved("gpu", tmp_path)["llamacpp"]
    assert gpu.variant == "cuda" and gpu.gpus and gpu.gpu_layers and gpu.vram
    default = resolved("default", tmp_path)["llamacpp"]
    assert default.confinement.cap_drop == ("ALL",) and default.cpuset and default.health.check


def test_a_change_to_what_a_container_is_made_of_moves_its_hash(tmp_path):
    """The pin can fail: the same stack with one more flag has another hash."""
    from dataclasses import replace

    spec = resolved("default", tmp_path)["llamacpp"]
    assert replace(spec, command=(*spec.command, "--verbose")).spec_hash != spec.spec_hash
    assert replace(spec, gpu_reason="another reason").spec_hash == spec.spec_hash  # a plan note: not hashed

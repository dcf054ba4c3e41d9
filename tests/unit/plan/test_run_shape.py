"""The run shape (ctx, slots, cache types) is typed on the spec and read from the raw argv."""

from __future__ import annotations


def test_the_run_shape_is_typed_on_the_spec_and_sees_raw_args(cli, write_config):
    from airpods.stack import Stack

    path = write_config('[services.llamacpp]\nargs = ["--ctx-size=8192", "-np", "2"]\n')
    spec = Stack(config_path=path).specs(create_secrets=False)["llamacpp"]
    assert spec.llama is not None and spec.llama.shape.ctx == 8192 and spec.llama.shape.parallel == 2
    assert spec.llama.model_in_volume == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.labels["io.airpods.run-shape"].startswith("ctx=8192,parallel=2")

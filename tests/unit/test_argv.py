from airpods.plan.argv import coerce_rendered, flag_name, render_args


def test_snake_case_becomes_kebab_flag():
    assert flag_name("ctx_size") == "--ctx-size"
    assert flag_name("-ngl") == "-ngl"
    assert flag_name("--raw_flag") == "--raw_flag"


def test_values_render_one_argv_item_each():
    argv = render_args({
        "model": "/models/a b.gguf",  # a space never splits
        "alias": "--evil --api-key x",  # a dash-led value stays one item
        "ctx_size": 4096,
        "temp": 0.7,
        "whole": 2.0,
        "no_webui": True,
        "mlock": False,
        "lora": ["/a.gguf", "/b.gguf"],
    })
    assert argv == ["--model", "/models/a b.gguf", "--alias", "--evil --api-key x", "--ctx-size", "4096",
                    "--temp", "0.7", "--whole", "2", "--no-webui", "--lora", "/a.gguf", "--lora", "/b.gguf"]


def test_config_order_is_kept():
    assert render_args({"b": 1, "a": 2}) == ["--b", "1", "--a", "2"]


def test_templated_booleans_and_empty_results():
    assert coerce_rendered("True", True) is True
    assert coerce_rendered("False", True) is False
    assert coerce_rendered("", True) is False
    assert coerce_rendered("True", False) == "True"  # a literal string stays a string
    assert render_args({"flash_attn": coerce_rendered("", True), "x": coerce_rendered("1", True)}) == ["--x", "1"]

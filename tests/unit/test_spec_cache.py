"""The resolved-spec cache: a hit skips pydantic and jinja; any input change misses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys


def render_in_subprocess(*args: str) -> tuple[dict, set[str]]:
    code = "\n".join([
        "import sys, io, contextlib",
        "from airpods.cli.main import main",
        "out = io.StringIO()",
        "with contextlib.redirect_stdout(out):",
        "    try:",
        f"        main({list(args)!r})",
        "    except SystemExit:",
        "        pass",
        "print(out.getvalue())",
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(proc.stdout), set(proc.stderr.strip().splitlines()[-1].split(","))


def test_second_render_comes_from_the_cache(isolated):
    cold_data, cold = render_in_subprocess("config", "render", "llamacpp", "--json", "--show-secrets")
    warm_data, warm = render_in_subprocess("config", "render", "llamacpp", "--json")
    assert {"pydantic", "jinja2"} <= cold  # the first run validates and renders
    assert not {"pydantic", "jinja2"} & warm  # the second does neither
    assert warm_data["command"] == cold_data["command"] and warm_data["env"]["LLAMA_API_KEY"] == "********"
    cache = isolated / "cache" / "airpods" / "specs.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_changes_to_any_input_miss_the_cache(cli, isolated, write_config, monkeypatch):
    def port(*extra: str) -> int:
        result = cli(*extra, "config", "render", "llamacpp", "--json", "--show-secrets")
        assert result.code == 0, result.text
        return json.loads(result.out)

    base = port()
    path = write_config("[services.llamacpp]\nports = [{ host = 9100, container = 8080 }]\n")
    assert port("--config", path)["ports"][0]["host"] == 9100
    with open(path, "w") as fh:
        fh.write("[services.llamacpp]\nports = [{ host = 9200, container = 8080 }]\n")
    assert port("--config", path)["ports"][0]["host"] == 9200
    monkeypatch.setenv("AIRPODS_GPU", "cuda")
    assert port()["variant"] == "cuda"
    monkeypatch.delenv("AIRPODS_GPU")
    key_file = isolated / "data" / "airpods" / "secrets" / "llamacpp-api-key"
    key_file.unlink()
    fresh = port()["env"]["LLAMA_API_KEY"]
    assert fresh != base["env"]["LLAMA_API_KEY"] and fresh == key_file.read_text().strip()


def test_validate_never_trusts_the_cache(cli, write_config):
    assert cli("config", "render", "llamacpp", "--show-secrets").code == 0
    bad = write_config("[services.llamacpp]\nenabled = 3.5\n")
    assert cli("--config", bad, "config", "validate").code == 2
